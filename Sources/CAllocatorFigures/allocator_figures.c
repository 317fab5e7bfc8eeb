#include <stdlib.h>
#include "allocator_figures.h"
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>

bool fleetwatch_allocator_figures(size_t *in_use, size_t *mapped, size_t *free_in_arenas) {
    struct mallinfo2 m = mallinfo2();
    *in_use = m.uordblks + m.hblkhd;
    *mapped = m.hblkhd;
    *free_in_arenas = m.fordblks;
    return true;
}
#else
bool fleetwatch_allocator_figures(size_t *in_use, size_t *mapped, size_t *free_in_arenas) {
    (void)in_use;
    (void)mapped;
    (void)free_in_arenas;
    return false;
}
#endif
