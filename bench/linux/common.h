/* What the Linux bench peers (blk.c, store.c) share: the TSC, the machine's idle
 * time, the clock, and loading the modules shipped in the initramfs's /modules. */
#ifndef ZEN_BENCH_COMMON_H
#define ZEN_BENCH_COMMON_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Loads /modules/<name> for each of `names` in order; a module built into this
 * kernel has no file and is skipped. */
static void load_modules(const char *const *names, unsigned n) {
    for (unsigned i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "/modules/%s", names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        syscall(SYS_finit_module, fd, "", 0);
        close(fd);
    }
}

/* Idle and iowait time of every CPU together, in USER_HZ ticks (/proc/stat's first
 * line); on one CPU, the time the machine sat idle. */
static uint64_t idle_ticks(void) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[5] = {0};
    if (!f) return 0;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5)
        v[3] = v[4] = 0;
    fclose(f);
    return v[3] + v[4];
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* TSC cycles of a stretch of `tsc` cycles, `ns` nanoseconds and `idle` idle ticks
 * with the idle time taken off (TSC per tick from the same stretch). */
static double busy_tsc(uint64_t tsc, uint64_t ns, uint64_t idle) {
    double per_tick = ns ? (double)tsc / (double)ns * (1e9 / sysconf(_SC_CLK_TCK)) : 0;
    return (double)tsc - (double)idle * per_tick;
}

#endif
