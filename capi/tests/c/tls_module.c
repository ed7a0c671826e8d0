/* tls_module.c - a shared object with thread-local storage, loaded many times by dlopen_tls.c. */
__thread long tls_words[64];

long tls_touch(void) { return ++tls_words[1]; }
