/* fuzz_safetensors.c -- the safetensors header parser and the sharded-index parser
 * (csrc/safetensors.h) on files written from the fuzz input.
 *
 * mms_weights_open takes paths, so each input is written to a private temporary directory
 * (under $TMPDIR, /dev/shm when available). Byte 0 picks the layout:
 *   bit 0 = 0  single file: the rest is one .safetensors file, opened as a file (bit 1 = 0)
 *              or through its directory (bit 1 = 1, "model.safetensors");
 *   bit 0 = 1  sharded: bytes 1-2 and 3-4 (little endian, each modulo what is left) give the
 *              lengths of the index JSON and of shard s1.safetensors, the rest is s2.safetensors;
 *              opened as the index file (bit 1 = 0) or the directory (bit 1 = 1);
 *   bit 2      MMS_WEIGHTS_IN_MEMORY (read into memory instead of mmap);
 *   bit 3      a directory is opened with an explicit file name: "model.safetensors" (which
 *              prefers model.safetensors.index.json), or "s1.safetensors" with bit 4.
 * After a successful open every tensor is looked up by name (find, get), its view checked to
 * lie inside its mapping, and read after the checkpoint is closed (the views keep the mapping
 * alive); renames are exercised too. */
#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_dir_create("st");
    return 0;
}

static void exercise(mms_weights *w) {
    int n = mms_weights_count(w);
    mms_tensor *held = calloc((size_t)n + 1, sizeof *held);
    if (!held) FUZZ_DIE("out of memory");
    char found[4] = {0}; /* find() of the first names, before renames */
    int n_held = 0;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        const char *name = mms_weights_name(w, i);
        FUZZ_CHECK(name && mms_weights_file_of(w, i), "tensor %d has no name or file", i);
        if (i) FUZZ_CHECK(strcmp(mms_weights_name(w, i - 1), name) < 0, "names not sorted/unique at %d", i);
        const mms_tensor *v = mms_weights_find(w, name);
        if (i < 4) found[i] = v != NULL;
        mms_error err;
        mms_tensor t;
        mms_status st = mms_weights_get(w, name, &t, &err);
        FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_UNSUPPORTED, "get('%s'): %d %s", name, st, err.msg);
        FUZZ_CHECK((st == MMS_OK) == (v != NULL), "find and get disagree on '%s'", name);
        if (st != MMS_OK) continue;
        size_t nbytes = mms_tensor_nbytes(&t);
        const uint8_t *lo = t.storage->data, *p = t.data;
        FUZZ_CHECK(nbytes == 0 || (p >= lo && nbytes <= t.storage->size && (size_t)(p - lo) <= t.storage->size - nbytes),
                   "tensor '%s' (%zu bytes) outside its mapping", name, nbytes);
        total += (int64_t)nbytes;
        held[n_held++] = t;
    }
    FUZZ_CHECK(total <= mms_weights_bytes(w), "tensor bytes %lld > mms_weights_bytes %lld", (long long)total,
               (long long)mms_weights_bytes(w));
    /* renames: "x.<name>" now finds what <name> found; any other name gets "missing." in front */
    const char *ren[] = {"x.", "", "", "missing."};
    mms_error err;
    FUZZ_CHECK(mms_weights_set_renames(w, ren, 2, &err) == MMS_OK, "set_renames: %s", err.msg);
    for (int i = 0; i < n && i < 4; i++) {
        char full[1100];
        const char *name = mms_weights_name(w, i);
        if (strlen(name) > 1000) continue;
        snprintf(full, sizeof full, "x.%s", name);
        FUZZ_CHECK((mms_weights_find(w, full) != NULL) == found[i], "rename lookup of '%s'", full);
    }
    mms_tensor t;
    if (mms_weights_get(w, "nope", &t, &err) == MMS_OK) mms_tensor_release(&t);
    mms_weights_close(w);
    /* views outlive the checkpoint: touch the first and last byte of each */
    unsigned sum = 0;
    for (int i = 0; i < n_held; i++) {
        size_t nb = mms_tensor_nbytes(&held[i]);
        if (nb) sum += ((const uint8_t *)held[i].data)[0] + ((const uint8_t *)held[i].data)[nb - 1];
        mms_tensor_release(&held[i]);
    }
    free(held);
    (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t mode = data[0];
    data++;
    size--;
    const int flags = (mode & 4) ? MMS_WEIGHTS_IN_MEMORY : 0;
    char path[PATH_MAX + 64];
    if (!(mode & 1)) {
        fuzz_dir_write("model.safetensors", data, size);
        if (mode & 2) snprintf(path, sizeof path, "%s", fuzz_dir);
        else snprintf(path, sizeof path, "%s/model.safetensors", fuzz_dir);
    } else {
        if (size < 4) return 0;
        size_t idx_len = ((size_t)data[0] | (size_t)data[1] << 8) % (size - 4 + 1);
        size_t s1 = ((size_t)data[2] | (size_t)data[3] << 8) % (size - 4 - idx_len + 1);
        data += 4;
        size -= 4;
        size_t rest = size - idx_len;
        fuzz_dir_write("model.safetensors.index.json", data, idx_len);
        fuzz_dir_write("s1.safetensors", data + idx_len, s1);
        fuzz_dir_write("s2.safetensors", data + idx_len + s1, rest - s1);
        if (mode & 2) snprintf(path, sizeof path, "%s", fuzz_dir);
        else snprintf(path, sizeof path, "%s/model.safetensors.index.json", fuzz_dir);
    }
    mms_weights *w = NULL;
    mms_error err;
    const char *filename = (mode & 10) == 10 ? ((mode & 16) ? "s1.safetensors" : "model.safetensors") : NULL;
    mms_status st = mms_weights_open_ex(path, filename, flags, &w, &err);
    FUZZ_LOG("open: %d %s (%d tensors)", st, st ? err.msg : "", st ? 0 : mms_weights_count(w));
    if (st == MMS_OK) exercise(w);
    else FUZZ_CHECK(w == NULL && err.msg[0], "failed open left a handle or no message (%d)", st);
    /* the next input starts from an empty directory */
    const char *names[] = {"model.safetensors", "model.safetensors.index.json", "s1.safetensors", "s2.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) fuzz_dir_remove(names[i]);
    return 0;
}
