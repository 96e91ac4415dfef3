/* fuzz_util.h -- helpers shared by the libFuzzer harnesses in tests/fuzz/ (header only).
 *
 * The harnesses load real vocabularies from tests/data once, in LLVMFuzzerInitialize. The
 * repository root is $MMS_ROOT when set (tools/fuzz.sh sets it), else found from the
 * executable's own path (<root>/build/fuzz/<target>). A harness that cannot find its data
 * aborts at start-up: fuzzing without the real vocabularies would silently cover nothing. */
#ifndef MMS_FUZZ_UTIL_H
#define MMS_FUZZ_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fatal harness error (never a finding in the library): print and abort. */
#define FUZZ_DIE(...) do { fprintf(stderr, "fuzz harness: " __VA_ARGS__); fputc('\n', stderr); abort(); } while (0)
/* A broken invariant of the API under test: a finding. */
#define FUZZ_CHECK(cond, ...)                                                                            \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                                \
            fputc('\n', stderr);                                                                         \
            abort();                                                                                     \
        }                                                                                                \
    } while (0)

/* MMS_FUZZ_DEBUG=1: the harnesses print what the main call of each input returned (to check
 * that seeds reach past the parsers: `MMS_FUZZ_DEBUG=1 build/fuzz/<target> corpus/<target>/x`). */
static inline int fuzz_debug(void) {
    static int on = -1;
    if (on < 0) on = getenv("MMS_FUZZ_DEBUG") != NULL;
    return on;
}
#define FUZZ_LOG(...) do { if (fuzz_debug()) { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static inline int fuzz_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* "<root>/<rel>" in a static buffer, overwritten by the next call. */
static inline const char *fuzz_path(const char *rel) {
    static char root[PATH_MAX];
    static char out[2 * PATH_MAX];
    if (!root[0]) {
        const char *env = getenv("MMS_ROOT");
        if (env && env[0]) {
            snprintf(root, sizeof root, "%s", env);
        } else {
            char exe[PATH_MAX];
            ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (n <= 0) FUZZ_DIE("cannot read /proc/self/exe; set MMS_ROOT");
            exe[n] = 0;
            for (int up = 0; up < 3; up++) { /* <root>/build/fuzz/<exe> */
                char *slash = strrchr(exe, '/');
                if (slash) *slash = 0;
            }
            snprintf(root, sizeof root, "%s", exe);
        }
        char probe[PATH_MAX + 16];
        snprintf(probe, sizeof probe, "%s/tests/data", root);
        if (!fuzz_is_dir(probe)) FUZZ_DIE("%s is not the repository root (no tests/data); set MMS_ROOT", root);
    }
    snprintf(out, sizeof out, "%s/%s", root, rel);
    return out;
}

/* Whole file at <root>/rel into a malloc'd buffer (+1 NUL byte, not counted in *len). */
static inline char *fuzz_read(const char *rel, size_t *len) {
    const char *p = fuzz_path(rel);
    FILE *f = fopen(p, "rb");
    if (!f) FUZZ_DIE("cannot open %s", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) FUZZ_DIE("cannot read %s", p);
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* An exact-size heap copy of data[0..n) (no NUL), so ASan flags any read past the end. */
static inline uint8_t *fuzz_dup(const uint8_t *data, size_t n) {
    uint8_t *p = malloc(n); /* ASan: malloc(0) is a valid pointer to no bytes */
    if (!p) FUZZ_DIE("out of memory");
    if (n) memcpy(p, data, n);
    return p;
}

/* Is s[0..n) well-formed UTF-8 (no surrogates, <= U+10FFFF, shortest forms)? */
static inline int fuzz_utf8_ok(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t k;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { k = 2; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 3; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { k = 4; cp = c & 0x07; min = 0x10000; }
        else return 0;
        if (n - i < k) return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += k;
    }
    return 1;
}

/* ---- a private scratch directory (harnesses whose API takes paths) ----------------------- */

static char fuzz_dir[PATH_MAX]; /* one per harness (each is its own program) */

static void fuzz_dir_cleanup(void) {
    DIR *d = opendir(fuzz_dir);
    if (!d) return;
    struct dirent *de;
    char p[PATH_MAX + 256];
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", fuzz_dir, de->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(fuzz_dir);
}

/* Create fuzz_dir under $TMPDIR (else /dev/shm when available, else /tmp), removed at exit. */
static inline void fuzz_dir_create(const char *tag) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0]) tmp = fuzz_is_dir("/dev/shm") ? "/dev/shm" : "/tmp";
    snprintf(fuzz_dir, sizeof fuzz_dir, "%s/mms_fuzz_%s.XXXXXX", tmp, tag);
    if (!mkdtemp(fuzz_dir)) FUZZ_DIE("mkdtemp %s: %s", fuzz_dir, strerror(errno));
    atexit(fuzz_dir_cleanup);
}

static inline void fuzz_dir_write(const char *name, const uint8_t *data, size_t n) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) FUZZ_DIE("open %s: %s", p, strerror(errno));
    while (n) {
        ssize_t w = write(fd, data, n);
        if (w <= 0) FUZZ_DIE("write %s: %s", p, strerror(errno));
        data += w;
        n -= (size_t)w;
    }
    close(fd);
}

static inline void fuzz_dir_remove(const char *name) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", fuzz_dir, name);
    unlink(p);
}

#endif
