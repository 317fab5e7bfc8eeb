#include <stdint.h>
/// Allocations counted since the process started (only when this library is preloaded).
uint64_t fleetwatch_malloc_count(void);
