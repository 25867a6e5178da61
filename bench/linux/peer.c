/* The Linux peer for `cargo xtask bench`: runs as /init of a tiny initramfs on the
 * same QEMU as Zen OS, under -icount shift=0, where the TSC counts guest instructions.
 * Prints `linux: bench <name>=<instructions>` lines on the console, then powers off.
 * Built by xtask with `gcc -O2 -static`. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static inline uint64_t rdtsc(void) {
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static void pin_cpu0(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* Two processes on one CPU yield to each other: instructions per switch. */
static uint64_t yield_switch(int rounds) {
    int go[2];
    if (pipe(go)) return 0;
    pid_t child = fork();
    if (child == 0) {
        char c;
        if (read(go[0], &c, 1) != 1) _exit(1);
        for (int i = 0; i < rounds; i++) sched_yield();
        _exit(0);
    }
    if (write(go[1], "x", 1) != 1) return 0;
    sched_yield();
    uint64_t t0 = rdtsc();
    for (int i = 0; i < rounds; i++) sched_yield();
    waitpid(child, NULL, 0);
    uint64_t t1 = rdtsc();
    return (t1 - t0) / (2 * (uint64_t)rounds);
}

/* One-byte ping-pong between two processes over a pair of fds: per round trip. */
static uint64_t pingpong(int a[2], int b[2], int rounds) {
    char c = 'p';
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i < rounds; i++) {
            if (read(a[0], &c, 1) != 1 || write(b[1], &c, 1) != 1) _exit(1);
        }
        _exit(0);
    }
    uint64_t t0 = rdtsc();
    for (int i = 0; i < rounds; i++) {
        if (write(a[1], &c, 1) != 1 || read(b[0], &c, 1) != 1) return 0;
    }
    uint64_t t1 = rdtsc();
    waitpid(child, NULL, 0);
    return (t1 - t0) / (uint64_t)rounds;
}

static uint64_t pipe_roundtrip(int rounds) {
    int a[2], b[2];
    if (pipe(a) || pipe(b)) return 0;
    return pingpong(a, b, rounds);
}

static uint64_t unix_roundtrip(int rounds) {
    int s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, s)) return 0;
    int a[2] = {s[1], s[0]}, b[2] = {s[0], s[1]};
    return pingpong(a, b, rounds);
}

static uint64_t null_syscall(int rounds) {
    uint64_t t0 = rdtsc();
    for (int i = 0; i < rounds; i++) getppid();
    return (rdtsc() - t0) / (uint64_t)rounds;
}

int main(void) {
    pin_cpu0();
    printf("linux: bench sched_yield_switch=%llu\n", (unsigned long long)yield_switch(20000));
    printf("linux: bench getppid=%llu\n", (unsigned long long)null_syscall(100000));
    printf("linux: bench pipe_roundtrip=%llu\n", (unsigned long long)pipe_roundtrip(10000));
    printf("linux: bench unix_roundtrip=%llu\n", (unsigned long long)unix_roundtrip(10000));
    printf("linux: bench done\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
