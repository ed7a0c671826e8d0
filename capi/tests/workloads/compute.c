/* A C program that gcc compiles and runs under libtemporal_slab.so: builds a linked structure
 * with malloc, sorts it with qsort, prints a checksum. usage: compute [N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node { struct node *next; char *text; unsigned key; };

static int by_key(const void *a, const void *b) {
    unsigned x = (*(struct node *const *)a)->key, y = (*(struct node *const *)b)->key;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 100000;
    struct node *head = NULL;
    unsigned seed = 12345;
    for (unsigned i = 0; i < n; i++) {
        struct node *nd = malloc(sizeof *nd);
        seed = seed * 1103515245u + 12345u;
        nd->key = seed >> 8;
        nd->text = malloc(8 + seed % 120);
        snprintf(nd->text, 8 + seed % 120, "%u", nd->key);
        nd->next = head;
        head = nd;
    }
    struct node **all = malloc(n * sizeof *all);
    unsigned i = 0;
    for (struct node *p = head; p; p = p->next) all[i++] = p;
    qsort(all, n, sizeof *all, by_key);
    unsigned long long sum = 0;
    for (i = 0; i < n; i++) {
        sum = sum * 31 + all[i]->key + strlen(all[i]->text);
        free(all[i]->text);
        free(all[i]);
    }
    free(all);
    printf("compute: %u nodes, checksum %llu\n", n, sum);
    return 0;
}
