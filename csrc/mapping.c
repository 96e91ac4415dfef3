/* mapping.c -- the registry of mapped checkpoint files, sharing, and the SIGBUS guard. */
#include "mapping.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Registered mappings live in a fixed table the signal handler can scan without locks: the
 * handler reads `begin`/`len` atomically; everything else changes under `reg_lock`. Mappings
 * beyond the table's size still work, unshared and unguarded (the pre-call fstat check still
 * applies). */
#define MAX_SLOTS 512

typedef struct map_ctx {
    int fd;             /* -1 for an in-memory copy (MMS_MAP_IN_MEMORY) */
    int slot;           /* index in `slots`, or -1 */
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} map_ctx;

static int is_copy(const map_ctx *c) { return c->fd < 0; }

typedef struct slot {
    uintptr_t begin;    /* atomic; 0 = free */
    size_t len;         /* atomic */
    int poisoned;       /* atomic */
    mms_storage *s;     /* under reg_lock */
} slot;

static slot slots[MAX_SLOTS];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction prev_bus;
static uintptr_t page_mask;

/* ---- the SIGBUS guard ------------------------------------------------------------------ */

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
    uintptr_t a = (uintptr_t)si->si_addr;
    for (int i = 0; i < MAX_SLOTS; i++) {
        uintptr_t b = __atomic_load_n(&slots[i].begin, __ATOMIC_ACQUIRE);
        size_t n = __atomic_load_n(&slots[i].len, __ATOMIC_ACQUIRE);
        if (!b || a < b || a >= b + n) continue;
        /* zero pages from the faulting page to the mapping's end: the read completes, the
         * mapping is marked, and the next check reports it (mmap is a plain syscall here) */
        uintptr_t p = a & page_mask;
        if (mmap((void *)p, b + n - p, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != MAP_FAILED) {
            __atomic_store_n(&slots[i].poisoned, 1, __ATOMIC_RELEASE);
            return;
        }
        break;
    }
    /* not ours: what would have happened without us */
    if (prev_bus.sa_flags & SA_SIGINFO) {
        if (prev_bus.sa_sigaction) { prev_bus.sa_sigaction(sig, si, uc); return; }
    } else if (prev_bus.sa_handler != SIG_DFL && prev_bus.sa_handler != SIG_IGN) {
        prev_bus.sa_handler(sig);
        return;
    }
    signal(SIGBUS, SIG_DFL); /* the faulting instruction runs again and the default action kills */
}

/* Installed when the first mapping is registered, and again if someone replaced it since
 * (e.g. faulthandler.enable() after import): the replacement becomes the chained handler. */
static void ensure_handler(void) {
    struct sigaction cur;
    if (sigaction(SIGBUS, NULL, &cur) != 0) return;
    if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus) return;
    page_mask = ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    prev_bus = cur;
    sigaction(SIGBUS, &sa, NULL);
}

/* ---- registry ----------------------------------------------------------------------------- */

static int same_file(const map_ctx *c, const struct stat *st, int in_memory) {
    return c->dev == st->st_dev && c->ino == st->st_ino && c->size == st->st_size &&
           c->mtime.tv_sec == st->st_mtim.tv_sec && c->mtime.tv_nsec == st->st_mtim.tv_nsec &&
           is_copy(c) == in_memory;
}

/* A live registered mapping of the same file, with one more reference; NULL if none. */
static mms_storage *lookup(const struct stat *st, int in_memory) {
    mms_storage *hit = NULL;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_SLOTS && !hit; i++) {
        mms_storage *s = slots[i].s;
        if (!s || !same_file(s->ctx, st, in_memory) || __atomic_load_n(&slots[i].poisoned, __ATOMIC_ACQUIRE)) continue;
        int r = __atomic_load_n(&s->refs, __ATOMIC_ACQUIRE);
        while (r > 0 && !__atomic_compare_exchange_n(&s->refs, &r, r + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {}
        if (r > 0) hit = s; /* r == 0: being destroyed, not reusable */
    }
    pthread_mutex_unlock(&reg_lock);
    return hit;
}

static void do_register(mms_storage *s) {
    map_ctx *c = s->ctx;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_SLOTS; i++) {
        if (slots[i].s) continue;
        slots[i].s = s;
        __atomic_store_n(&slots[i].poisoned, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&slots[i].len, is_copy(c) ? 0 : s->size, __ATOMIC_RELEASE);
        __atomic_store_n(&slots[i].begin, is_copy(c) ? 0 : (uintptr_t)s->data, __ATOMIC_RELEASE);
        c->slot = i;
        if (!is_copy(c) && s->size) ensure_handler();
        break;
    }
    pthread_mutex_unlock(&reg_lock);
}

static void map_destroy(mms_storage *s) {
    map_ctx *c = s->ctx;
    if (c->slot >= 0) {
        pthread_mutex_lock(&reg_lock);
        slot *sl = &slots[c->slot];
        __atomic_store_n(&sl->begin, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&sl->len, 0, __ATOMIC_RELEASE);
        sl->s = NULL;
        pthread_mutex_unlock(&reg_lock);
    }
    if (s->data && s->size) munmap(s->data, s->size);
    if (c->fd >= 0) close(c->fd);
    mms_free(c->path);
    mms_free(c);
    mms_free(s);
}

/* ---- mapping a file ------------------------------------------------------------------------ */

/* MMS_MAP_IN_MEMORY: the file read into anonymous memory backed by transparent huge pages.
 * Streaming it can run faster than through 4 KiB page-cache pages (the hardware prefetchers stop
 * at page boundaries): decoding measured 1-9 % faster, depending on the huge pages obtained. */
static mms_status read_anon(const char *path, int fd, size_t size, void **out, mms_error *err) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return mms_error_set(err, MMS_ERR_NOMEM, "%s: cannot allocate %zu bytes for the weights", path, size);
    madvise(p, size, MADV_HUGEPAGE);
    size_t done = 0;
    while (done < size) {
        ssize_t r = pread(fd, (char *)p + done, size - done, (off_t)done);
        if (r <= 0) {
            munmap(p, size);
            return mms_error_set(err, MMS_ERR_IO, "%s: read failed after %zu of %zu bytes", path, done, size);
        }
        done += (size_t)r;
    }
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
    /* ask for the huge pages now (synchronous collapse, Linux >= 6.1; harmless elsewhere):
     * MADV_HUGEPAGE alone gets none when memory is fragmented */
    madvise(p, size, MADV_COLLAPSE);
    mprotect(p, size, PROT_READ);
    *out = p;
    return MMS_OK;
}

mms_status mms_map_file(const char *path, int flags, mms_storage **out, mms_error *err) {
    int in_memory = (flags & MMS_MAP_IN_MEMORY) != 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no such file", path);
        return mms_error_set(err, MMS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mms_error_set(err, MMS_ERR_IO, "%s: not a regular file", path);
    }
    if ((*out = lookup(&st, in_memory))) {
        close(fd);
        return MMS_OK;
    }
    size_t size = (size_t)st.st_size;
    void *p = NULL;
    mms_status rc = MMS_OK;
    if (size && in_memory) {
        rc = read_anon(path, fd, size, &p, err);
    } else if (size && (p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
        p = NULL;
        rc = mms_error_set(err, MMS_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    }
    mms_storage *s = rc == MMS_OK ? mms_calloc(1, sizeof *s) : NULL;
    map_ctx *c = rc == MMS_OK ? mms_calloc(1, sizeof *c) : NULL;
    char *pc = rc == MMS_OK ? mms_strdup(path) : NULL;
    if (rc == MMS_OK && (!s || !c || !pc)) rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    if (rc != MMS_OK) {
        if (p) munmap(p, size);
        close(fd);
        mms_free(s);
        mms_free(c);
        mms_free(pc);
        return rc;
    }
    if (in_memory) { /* the copy no longer depends on the file */
        close(fd);
        fd = -1;
    }
    /* The fd of a mapping stays open for its life: it pins the inode if the path is replaced
     * and lets mms_mapset_check see the file shrink or change. */
    *c = (map_ctx){.fd = fd, .slot = -1, .path = pc, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                   .mtime = st.st_mtim};
    s->refs = 1;
    s->data = p;
    s->size = size;
    s->device = MMS_DEVICE_CPU;
    s->destroy = map_destroy;
    s->ctx = c;
    s->is_file_map = !in_memory;
    do_register(s);
    *out = s;
    return MMS_OK;
}

const char *mms_map_path(const mms_storage *s) {
    return s && s->destroy == map_destroy ? ((const map_ctx *)s->ctx)->path : NULL;
}

/* ---- mapsets ------------------------------------------------------------------------------- */

mms_status mms_mapset_add(mms_mapset *set, mms_storage *s, mms_error *err) {
    if (!s || s->destroy != map_destroy) return MMS_OK;
    for (int i = 0; i < set->n; i++)
        if (set->maps[i] == s) return MMS_OK;
    mms_storage **m = mms_realloc(set->maps, (size_t)(set->n + 1) * sizeof *m);
    if (!m) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    set->maps = m;
    mms_storage_retain(s);
    set->maps[set->n++] = s;
    return MMS_OK;
}

mms_status mms_mapset_copy(mms_mapset *dst, const mms_mapset *src, mms_error *err) {
    for (int i = 0; i < src->n; i++) {
        mms_status rc = mms_mapset_add(dst, src->maps[i], err);
        if (rc != MMS_OK) return rc;
    }
    return MMS_OK;
}

void mms_mapset_release(mms_mapset *set) {
    for (int i = 0; i < set->n; i++) mms_storage_release(set->maps[i]);
    mms_free(set->maps);
    set->maps = NULL;
    set->n = 0;
}

mms_status mms_mapset_check(const mms_mapset *set, mms_error *err) {
    for (int i = 0; set && i < set->n; i++) {
        const map_ctx *c = set->maps[i]->ctx;
        if (is_copy(c)) continue;
        if (c->slot >= 0 && __atomic_load_n(&slots[c->slot].poisoned, __ATOMIC_ACQUIRE))
            return mms_error_set(err, MMS_ERR_IO,
                                 "%s: the file was truncated while mapped; reads of the lost pages returned zeros, so "
                                 "this result is invalid. Reload the model",
                                 c->path);
        struct stat st;
        if (fstat(c->fd, &st) != 0) return mms_error_set(err, MMS_ERR_IO, "%s: fstat failed: %s", c->path, strerror(errno));
        if (st.st_size < c->size)
            return mms_error_set(err, MMS_ERR_IO,
                                 "%s: the file shrank from %lld to %lld bytes after it was loaded; reload the model",
                                 c->path, (long long)c->size, (long long)st.st_size);
        if (st.st_size != c->size || st.st_mtim.tv_sec != c->mtime.tv_sec || st.st_mtim.tv_nsec != c->mtime.tv_nsec)
            return mms_error_set(err, MMS_ERR_IO,
                                 "%s: the file was modified after it was loaded (its weights may have changed under "
                                 "the mapping); reload the model",
                                 c->path);
    }
    return MMS_OK;
}

int mms_mappings_list(mms_mapping_info *out, int max) {
    int n = 0;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_SLOTS; i++) {
        mms_storage *s = slots[i].s;
        if (!s) continue;
        if (n < max) {
            const map_ctx *c = s->ctx;
            mms_mapping_info *o = &out[n];
            snprintf(o->path, sizeof o->path, "%s", c->path);
            o->size = s->size;
            o->refs = __atomic_load_n(&s->refs, __ATOMIC_ACQUIRE);
            o->in_memory = is_copy(c);
            o->poisoned = __atomic_load_n(&slots[i].poisoned, __ATOMIC_ACQUIRE);
        }
        n++;
    }
    pthread_mutex_unlock(&reg_lock);
    return n;
}
