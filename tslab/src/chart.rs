//! A small SVG line chart: panels stacked vertically, each with its own y axis, a shared time
//! axis, vertical markers and a legend. Written by hand: the pictures are a few polylines and
//! text elements, and the charting crates either need a font backend to lay out their labels or
//! pull in a rendering stack for what is here about 150 lines of string formatting.

use std::fmt::Write as _;

/// One line of a panel.
pub struct Line {
    pub name: String,
    /// (x, y) points, x in the chart's x units.
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, a unit for its y axis, its lines.
pub struct Panel {
    pub title: String,
    pub unit: String,
    pub lines: Vec<Line>,
}

const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 260.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 220.0;
const TOP: f64 = 50.0;
const GAP: f64 = 60.0;
const COLOURS: [&str; 8] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

/// Escapes text for SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 does not allow.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// About five round tick values covering `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(f64::MIN_POSITIVE);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 6.0).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 && out.len() < 12 {
        out.push(t);
        t += step;
    }
    out
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The SVG document: `title` on top, `panels` over the x range `x_range` (`x_unit` below the
/// last panel), a dashed vertical line at every x in `markers` (named `marker_name` in the
/// legend).
pub fn render(
    title: &str,
    x_unit: &str,
    x_range: (f64, f64),
    markers: &[f64],
    marker_name: &str,
    panels: &[Panel],
) -> String {
    let height = TOP + panels.len() as f64 * (PANEL_HEIGHT + GAP) + 20.0;
    let plot_w = WIDTH - LEFT - RIGHT;
    let (x0, x1) = (x_range.0, if x_range.1 > x_range.0 { x_range.1 } else { x_range.0 + 1.0 });
    let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(s, r#"<text x="{LEFT}" y="24" font-size="16">{}</text>"#, escape(title));
    for (p, panel) in panels.iter().enumerate() {
        let top = TOP + p as f64 * (PANEL_HEIGHT + GAP);
        let bottom = top + PANEL_HEIGHT;
        let ys = panel.lines.iter().flat_map(|l| l.points.iter().map(|(_, y)| *y)).filter(|y| y.is_finite());
        let y_hi = ys.fold(0.0f64, f64::max).max(f64::MIN_POSITIVE) * 1.05;
        let sy = |y: f64| bottom - (y / y_hi) * PANEL_HEIGHT;
        let _ = writeln!(
            s,
            r#"<text x="{LEFT}" y="{}" font-size="14">{} ({})</text>"#,
            top - 8.0,
            escape(&panel.title),
            escape(&panel.unit)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_HEIGHT}" fill="none" stroke="#999"/>"##
        );
        for t in ticks(0.0, y_hi) {
            let y = sy(t);
            let _ =
                writeln!(s, r##"<line x1="{LEFT}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#eee"/>"##, LEFT + plot_w);
            let _ =
                writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, LEFT - 6.0, y + 4.0, number(t));
        }
        for t in ticks(x0, x1) {
            let x = sx(t);
            let _ = writeln!(s, r#"<text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"#, bottom + 16.0, number(t));
        }
        for m in markers {
            let x = sx(*m);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{bottom}" stroke="#bbb" stroke-dasharray="3,3"/>"##
            );
        }
        for (i, line) in panel.lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<String> = line
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                pts.join(" ")
            );
            let ly = top + 14.0 + i as f64 * 16.0;
            let lx = LEFT + plot_w + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="{colour}" stroke-width="3"/>"#,
                ly - 4.0,
                lx + 16.0,
                ly - 4.0
            );
            let _ = writeln!(s, r#"<text x="{}" y="{ly}">{}</text>"#, lx + 22.0, escape(&line.name));
        }
        if !markers.is_empty() {
            let ly = top + 14.0 + panel.lines.len() as f64 * 16.0;
            let lx = LEFT + plot_w + 12.0;
            let _ = writeln!(
                s,
                r##"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="#bbb" stroke-dasharray="3,3"/>"##,
                ly - 4.0,
                lx + 16.0,
                ly - 4.0
            );
            let _ = writeln!(s, r#"<text x="{}" y="{ly}">{}</text>"#, lx + 22.0, escape(marker_name));
        }
    }
    let last_bottom = TOP + panels.len() as f64 * (PANEL_HEIGHT + GAP) - GAP;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        LEFT + plot_w / 2.0,
        last_bottom + 34.0,
        escape(x_unit)
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(ticks(0.0, 10.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = ticks(0.0, 0.37);
        assert!(t.len() >= 3 && t.len() <= 7 && t[0] == 0.0, "{t:?}");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;\u{FFFD}");
    }
}
