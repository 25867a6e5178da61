/* The Linux peer of `cargo xtask bench --only tagfs-os`: /init of an initramfs that
 * also holds the NVMe and ext4 modules. The bench disk (the same QEMU NVMe device
 * model Zen OS's storebench runs on) holds an ext4 file system xtask made on the host
 * with mkfs.ext4; this mounts it and runs storebench's workloads on files, the tags
 * as extended attributes (user.tag.<tag>, empty values):
 *
 *   create4k: 2,000 files of 4 KiB with 8 tags each, syncfs every 1,000;
 *   query2:   a 2-tag AND over 100,000 files (made first, three tags each), by
 *             walking the directories and asking each file for both attributes;
 *   read16m:  a 16 MiB file read whole (written, synced, page cache dropped first).
 *
 * Prints `linux: bench tagfs_<name>=<TSC per operation>` and `..._busy=` (the time
 * the machine sat idle, /proc/stat's idle and iowait, taken off), then `linux:
 * bench done`, and powers off. Under -icount shift=0 the TSC counts instructions. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define CREATE 2000u
#define QUERY_OBJECTS 100000u
#define QUERIES 3u
#define BIG (16u << 20)

static const char *MODULES[] = {
    "crct10dif_common.ko", "crc-t10dif.ko", "crc64.ko",       "crc64-rocksoft.ko",
    "t10-pi.ko",           "nvme-core.ko",  "nvme.ko",        "crc16.ko",
    "mbcache.ko",          "jbd2.ko",       "crc32c_generic.ko", "ext4.ko",
};

struct mark { uint64_t tsc, ns, idle; };

static struct mark mark(void) {
    struct mark m = {rdtsc(), now_ns(), idle_ticks()};
    return m;
}

static void report(const char *name, struct mark m, unsigned ops) {
    uint64_t t = rdtsc(), ns = now_ns() - m.ns, idle = idle_ticks() - m.idle;
    double busy = busy_tsc(t - m.tsc, ns, idle);
    printf("linux: bench tagfs_%s=%llu\n", name, (unsigned long long)((t - m.tsc) / ops));
    printf("linux: bench tagfs_%s_busy=%llu\n", name,
           (unsigned long long)(busy > 0 ? busy / ops : 0));
}

static int tag(int fd, const char *t) {
    char name[96];
    snprintf(name, sizeof name, "user.tag.%s", t);
    return fsetxattr(fd, name, "", 0, 0);
}

static int has(const char *path, const char *t) {
    char name[96];
    snprintf(name, sizeof name, "user.tag.%s", t);
    return getxattr(path, name, NULL, 0) >= 0;
}

/* Files in `dir` that carry both tags. */
static unsigned walk(const char *dir, const char *a, const char *b) {
    DIR *d = opendir(dir);
    unsigned n = 0;
    struct dirent *e;
    char path[512];
    if (!d) return 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        n += has(path, a) && has(path, b);
    }
    closedir(d);
    return n;
}

static int run(void) {
    static char page[4096], buf[1 << 20];
    char path[128], t[32];
    memset(page, 0x5a, sizeof page);
    mkdir("/mnt/c", 0755);
    mkdir("/mnt/q", 0755);
    struct mark m = mark();
    for (unsigned i = 0; i < CREATE; i++) {
        snprintf(path, sizeof path, "/mnt/c/%u", i);
        int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
        if (fd < 0 || write(fd, page, sizeof page) != sizeof page) return 1;
        int bad = tag(fd, "bench");
        snprintf(t, sizeof t, "n:%u", i), bad |= tag(fd, t);
        snprintf(t, sizeof t, "m10:%u", i % 10), bad |= tag(fd, t);
        snprintf(t, sizeof t, "m7:%u", i % 7), bad |= tag(fd, t);
        snprintf(t, sizeof t, "m3:%u", i % 3), bad |= tag(fd, t);
        bad |= tag(fd, i % 2 ? "odd" : "even");
        bad |= tag(fd, "year:2026");
        bad |= tag(fd, "type:text");
        if (bad) return 2;
        if (i % 1000 == 999) syncfs(fd);
        close(fd);
    }
    report("create4k", m, CREATE);
    for (unsigned i = CREATE; i < QUERY_OBJECTS; i++) {
        snprintf(path, sizeof path, "/mnt/q/%u", i);
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        if (fd < 0) return 3;
        int bad = tag(fd, "q");
        snprintf(t, sizeof t, "m10:%u", i % 10), bad |= tag(fd, t);
        snprintf(t, sizeof t, "m7:%u", i % 7), bad |= tag(fd, t);
        close(fd);
        if (bad) return 4;
    }
    sync();
    m = mark();
    unsigned found = 0;
    for (unsigned k = 0; k < QUERIES; k++)
        found = walk("/mnt/c", "m10:3", "m7:2") + walk("/mnt/q", "m10:3", "m7:2");
    report("query2", m, QUERIES);
    printf("linux: the query found %u of %u\n", found, QUERY_OBJECTS);
    int fd = open("/mnt/big", O_CREAT | O_WRONLY | O_TRUNC, 0644);
    for (unsigned i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7);
    for (unsigned off = 0; off < BIG; off += sizeof buf)
        if (fd < 0 || write(fd, buf, sizeof buf) != sizeof buf) return 5;
    fsync(fd);
    close(fd);
    int dc = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (dc >= 0) {
        if (write(dc, "3\n", 2) != 2) return 6;
        close(dc);
    }
    m = mark();
    fd = open("/mnt/big", O_RDONLY);
    uint64_t got = 0;
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0) got += (uint64_t)n;
    report("read16m", m, 1);
    close(fd);
    return got == BIG ? 0 : 7;
}

int main(void) {
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    mkdir("/mnt", 0755);
    load_modules(MODULES, sizeof MODULES / sizeof *MODULES);
    int ok = 0;
    for (int i = 0; i < 500 && !ok; i++) {
        ok = mount("/dev/nvme0n1", "/mnt", "ext4", 0, NULL) == 0;
        if (!ok) usleep(10000);
    }
    if (!ok) {
        printf("linux: bench cannot mount the ext4 disk\n");
    } else {
        int r = run();
        if (r) printf("linux: bench failed at step %d\n", r);
        umount("/mnt");
    }
    printf("linux: bench done\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
