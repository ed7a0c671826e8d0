/*
 * dlopen_tls.c - the allocator's thread-local storage under dlopen, in a process where malloc
 * is temporal-slab's.
 *
 * libtemporal_slab.so reaches its thread-local state through __tls_get_addr (Rust has no stable
 * initial-exec TLS model). After a dlopen of a module with TLS, a thread's next __tls_get_addr
 * updates its TLS vector, and glibc may call malloc (to grow the vector) or free (to drop the
 * block of an unloaded module) from inside that update: here that call comes back into the
 * allocator, which calls __tls_get_addr again. Three cases, each of which must neither recurse
 * forever nor double-free:
 *   1. a thread started before N dlopens whose first TLS access afterwards is inside malloc
 *      (its vector must grow: N is more than glibc's 14 spare slots);
 *   2. the main thread calling malloc right after each dlopen (the update runs inside malloc);
 *   3. a thread that used an unloaded module's TLS, then mallocs after another dlopen reused
 *      the module's slot (glibc frees the old block during the update).
 *
 * usage: dlopen_tls DIR N   (DIR holds tls_module_1.so .. tls_module_N.so)
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef long (*touch_fn)(void);

static const char *dir;
static atomic_int phase;

static void *open_module(int i, touch_fn *touch) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tls_module_%d.so", dir, i);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        exit(2);
    }
    *touch = (touch_fn)dlsym(h, "tls_touch");
    if (!*touch) exit(2);
    return h;
}

static void wait_for(int p) {
    while (atomic_load(&phase) < p) usleep(500);
}

/* Case 1: sleeps through the dlopens, then allocates. */
static void *late_thread(void *arg) {
    (void)arg;
    wait_for(1);
    for (int i = 0; i < 2000; i++) free(malloc(16 + (size_t)i % 3000));
    return (void *)1;
}

/* Case 3: uses a module's TLS, lets main unload it and load another, then allocates. */
static touch_fn doomed_touch;
static void *unload_thread(void *arg) {
    (void)arg;
    wait_for(2);
    doomed_touch();
    atomic_store(&phase, 3);
    wait_for(4);
    for (int i = 0; i < 2000; i++) free(malloc(16 + (size_t)i % 3000));
    return (void *)1;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    dir = argv[1];
    int n = atoi(argv[2]);
    pthread_t late, unload;
    void *r1 = NULL, *r2 = NULL;
    if (pthread_create(&late, NULL, late_thread, NULL) || pthread_create(&unload, NULL, unload_thread, NULL)) return 2;
    free(malloc(100)); /* both threads exist and have their heaps before any dlopen */

    /* Case 2, while case 1's thread waits. */
    for (int i = 2; i <= n; i++) {
        touch_fn touch;
        open_module(i, &touch);
        void *p = malloc(50 + (size_t)i);
        memset(p, i, 50);
        free(p);
        touch();
    }
    atomic_store(&phase, 1);
    pthread_join(late, &r1);

    /* Case 3. */
    void *doomed = open_module(1, &doomed_touch);
    atomic_store(&phase, 2);
    wait_for(3);
    dlclose(doomed);
    touch_fn again;
    open_module(1, &again);
    again();
    atomic_store(&phase, 4);
    pthread_join(unload, &r2);

    if (r1 != (void *)1 || r2 != (void *)1) return 1;
    printf("dlopen_tls: %d modules ok\n", n);
    return 0;
}
