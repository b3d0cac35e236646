/*
 * Preloaded after the ASan runtime by scripts/sanitize/postgres. A runtime that is preloaded
 * (not linked into the program) initializes at the first malloc, which in postgres and psql
 * comes from libp11-kit's constructor inside newlocale() with glibc's locale lock held. The
 * runtime's start-up looks up swift_demangle and clears the failed lookup with dlerror(),
 * which translates its message and so takes that same lock: the process hangs. With this
 * symbol present the lookup succeeds and dlerror() has nothing to translate. Returning NULL
 * leaves every name to the C++ demangler.
 */
#include <stddef.h>

char *swift_demangle(const char *name, size_t length, char *out, size_t *out_length, unsigned flags);

char *swift_demangle(const char *name, size_t length, char *out, size_t *out_length, unsigned flags) {
  (void)name;
  (void)length;
  (void)out;
  (void)out_length;
  (void)flags;
  return NULL;
}
