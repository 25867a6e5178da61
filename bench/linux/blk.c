/* The Linux peer of `cargo xtask bench --only nvme`: /init of an initramfs that also
 * holds the NVMe driver's modules. Loads them, opens the scratch NVMe disk with
 * O_DIRECT and runs the same workloads as Zen OS's blkbench on the same QEMU device:
 * 4 KiB random reads and writes at queue depth 1 (pread/pwrite) and 32 (Linux AIO:
 * io_submit/io_getevents), and 128 KiB sequential reads; on two CPUs, two processes,
 * one per CPU, each its own share. Prints `linux: bench nvme_<name>=<TSC per I/O>`
 * (under -icount shift=0 the TSC counts guest instructions, all CPUs'), then powers
 * off. Built by xtask with `gcc -O2 -static`. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* The modules, in dependency order (modinfo's `depends`). */
static const char *MODULES[] = {
    "crct10dif_common.ko", "crc-t10dif.ko", "crc64.ko", "crc64-rocksoft.ko",
    "t10-pi.ko", "nvme-core.ko", "nvme.ko",
};

/* Same LBAs in every run: a small xorshift. */
static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define DISK_BLOCKS (32u << 20) / 4096 /* in 4 KiB units */
#define BASE 8                          /* past the GPT's first 32 KiB */
#define SPAN 4096                       /* 16 MiB of 4 KiB blocks */

static long sys_io_setup(unsigned n, aio_context_t *ctx) { return syscall(SYS_io_setup, n, ctx); }
static long sys_io_submit(aio_context_t c, long n, struct iocb **v) { return syscall(SYS_io_submit, c, n, v); }
static long sys_io_getevents(aio_context_t c, long min, long n, struct io_event *e) {
    return syscall(SYS_io_getevents, c, min, n, e, NULL);
}

static off_t rand_off(unsigned share, unsigned shares) {
    uint64_t span = SPAN / shares;
    return (off_t)(BASE + share * span + next() % span) * 4096;
}

/* `ops` I/Os of `size` bytes at queue depth `qd` (1: pread/pwrite); sequential from
 * the share's start if `seq`. */
static int workload(int fd, int write, int qd, size_t size, int seq, unsigned ops,
                    unsigned share, unsigned shares) {
    char *buf;
    if (posix_memalign((void **)&buf, 4096, size * (size_t)qd)) return -1;
    memset(buf, 0x5a, size * (size_t)qd);
    off_t seq_at = (off_t)(BASE + share * (SPAN / shares)) * 4096;
    if (qd == 1) {
        for (unsigned i = 0; i < ops; i++) {
            off_t off = seq ? seq_at + (off_t)i * (off_t)size : rand_off(share, shares);
            ssize_t n = write ? pwrite(fd, buf, size, off) : pread(fd, buf, size, off);
            if (n != (ssize_t)size) return -1;
        }
        return 0;
    }
    aio_context_t ctx = 0;
    if (sys_io_setup(qd, &ctx)) return -1;
    struct iocb cbs[64], *cbp[64];
    struct io_event ev[64];
    unsigned sent = 0, done = 0;
    for (int k = 0; k < qd && sent < ops; k++, sent++) {
        memset(&cbs[k], 0, sizeof cbs[k]);
        cbs[k].aio_fildes = fd;
        cbs[k].aio_lio_opcode = write ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
        cbs[k].aio_buf = (uint64_t)(uintptr_t)(buf + size * k);
        cbs[k].aio_nbytes = size;
        cbs[k].aio_offset = rand_off(share, shares);
        cbs[k].aio_data = k;
        cbp[k] = &cbs[k];
    }
    if (sys_io_submit(ctx, sent, cbp) != (long)sent) return -1;
    while (done < ops) {
        long n = sys_io_getevents(ctx, 1, qd, ev);
        if (n <= 0) return -1;
        int again = 0;
        for (long i = 0; i < n; i++) {
            if (ev[i].res != (long long)size) return -1;
            done++;
            if (sent < ops) {
                struct iocb *cb = &cbs[ev[i].data];
                cb->aio_offset = rand_off(share, shares);
                cbp[again++] = cb;
                sent++;
            }
        }
        if (again && sys_io_submit(ctx, again, cbp) != again) return -1;
    }
    syscall(SYS_io_destroy, ctx);
    return 0;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* Busy TSC per I/O of the last `measure`: the idle ticks taken off. */
static uint64_t last_busy;

/* Runs a workload in `shares` processes (one per CPU); TSC per I/O over all. */
static uint64_t measure(int fd, int write, int qd, size_t size, int seq, unsigned ops,
                        unsigned shares) {
    uint64_t idle0 = idle_ticks(), ns0 = now_ns();
    uint64_t t0 = rdtsc();
    for (unsigned s = 1; s < shares; s++) {
        if (fork() == 0) {
            pin((int)s);
            _exit(workload(fd, write, qd, size, seq, ops / shares, s, shares) ? 1 : 0);
        }
    }
    int ok = workload(fd, write, qd, size, seq, ops / shares, 0, shares) == 0;
    for (unsigned s = 1; s < shares; s++) {
        int st;
        wait(&st);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    uint64_t t1 = rdtsc();
    uint64_t ns = now_ns() - ns0, idle = idle_ticks() - idle0;
    /* TSC per USER_HZ tick, from the TSC and the clock over the same stretch. */
    double busy = busy_tsc(t1 - t0, ns, idle);
    last_busy = ok && busy > 0 ? (uint64_t)busy / ops : 0;
    return ok ? (t1 - t0) / ops : 0;
}

int main(void) {
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    load_modules(MODULES, sizeof MODULES / sizeof *MODULES);
    int fd = -1;
    for (int i = 0; i < 500 && fd < 0; i++) {
        fd = open("/dev/nvme0n1", O_RDWR | O_DIRECT);
        if (fd < 0) usleep(10000);
    }
    if (fd < 0) {
        printf("linux: bench no NVMe disk\n");
    } else {
        unsigned cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
        pin(0);
        struct { const char *name; int write, qd; size_t size; int seq; unsigned ops; } w[] = {
            {"rr4k_qd1", 0, 1, 4096, 0, 512},
            {"rw4k_qd1", 1, 1, 4096, 0, 512},
            {"rr4k_qd32", 0, 32, 4096, 0, 2048},
            {"rw4k_qd32", 1, 32, 4096, 0, 2048},
            {"sr128k", 0, 1, 128 << 10, 1, 64},
        };
        for (unsigned i = 0; i < sizeof w / sizeof *w; i++) {
            uint64_t v = measure(fd, w[i].write, w[i].qd, w[i].size, w[i].seq, w[i].ops,
                                 w[i].seq ? 1 : cpus);
            printf("linux: bench nvme_%s_smp%u=%llu\n", w[i].name, cpus, (unsigned long long)v);
            printf("linux: bench nvme_%s_smp%u_busy=%llu\n", w[i].name, cpus,
                   (unsigned long long)last_busy);
        }
    }
    printf("linux: bench done\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
