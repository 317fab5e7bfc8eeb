#pragma once
#include <stdbool.h>
#include <stddef.h>

/// glibc's `mallinfo2` (2.33 and later): the bytes the hub's allocations hold now (in the arenas and mapped on their
/// own), of which mapped on their own, and the bytes free inside the arenas. False, with nothing written, under
/// another C library.
bool fleetwatch_allocator_figures(size_t *in_use, size_t *mapped, size_t *free_in_arenas);
