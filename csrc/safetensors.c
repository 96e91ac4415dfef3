/* safetensors.c -- mmap + header validation for safetensors files and sharded indexes. */
#include "safetensors.h"

#include "mapping.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER_BYTES (100u << 20) /* the format's own limit */
#define DTYPE_UNSUPPORTED ((mms_dtype)-1)

typedef struct entry {
    char *name;
    mms_tensor t;      /* borrowed view into the mapping (t.storage unset) */
    int file;          /* index into w->files */
    const char *bad_dtype; /* non-NULL: valid tag we cannot compute with */
} entry;

typedef struct mapped_file {
    char *path;
    mms_storage *map;  /* mapping storage; one ref held by mms_weights */
} mapped_file;

struct mms_weights {
    mapped_file *files;
    int n_files;
    entry *entries;
    int n_entries;
    int64_t bytes;
    /* name rewriting (mms_weights_set_renames): a name starting with ren_from[i] is looked up
     * with that prefix replaced by ren_to[i] (first match wins) */
    int flags;  /* MMS_WEIGHTS_* given to mms_weights_open_ex */
    int n_ren;
    char ren_from[MMS_WEIGHTS_MAX_RENAMES][64], ren_to[MMS_WEIGHTS_MAX_RENAMES][64];
};

/* ---- header parsing ------------------------------------------------------------------ */

static int parse_dtype(const char *tag, mms_dtype *dt, const char **bad, size_t *esize) {
    static const struct { const char *tag; int dt; size_t size; } k[] = {
        {"F32", MMS_DTYPE_F32, 4}, {"F16", MMS_DTYPE_F16, 2},  {"BF16", MMS_DTYPE_BF16, 2},
        {"I32", MMS_DTYPE_I32, 4}, {"I64", MMS_DTYPE_I64, 8},  {"U8", MMS_DTYPE_U8, 1},
        {"BOOL", MMS_DTYPE_U8, 1}, {"F64", -1, 8},             {"I8", -1, 1},
        {"I16", -1, 2},            {"U16", -1, 2},             {"U32", -1, 4},
        {"U64", -1, 8},            {"F8_E4M3", -1, 1},         {"F8_E5M2", -1, 1},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        if (strcmp(tag, k[i].tag) == 0) {
            *dt = k[i].dt < 0 ? DTYPE_UNSUPPORTED : (mms_dtype)k[i].dt;
            *bad = k[i].dt < 0 ? k[i].tag : NULL;
            *esize = k[i].size;
            return 1;
        }
    }
    return 0;
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const entry *)a)->name, ((const entry *)b)->name);
}

typedef struct span { uint64_t begin, end; const char *name; } span;
static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

/* Is v a JSON number holding a non-negative integer that fits in uint64? */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* Parse and validate the header of mapped file `fi`; append its entries to w. */
static mms_status parse_file(mms_weights *w, int fi, mms_error *err) {
    const char *path = w->files[fi].path;
    const uint8_t *base = w->files[fi].map->data;
    size_t fsize = w->files[fi].map->size;
    if (fsize < 8) return mms_error_set(err, MMS_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes, need at least 8)", path, fsize);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | base[i];
    if (n > MAX_HEADER_BYTES || n > fsize - 8)
        return mms_error_set(err, MMS_ERR_FORMAT, "%s: bad header length %llu (file has %zu bytes)", path,
                             (unsigned long long)n, fsize);
    const char *hdr = (const char *)base + 8;
    const char *end_ptr = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &end_ptr, 0);
    if (!root) return mms_error_set(err, MMS_ERR_FORMAT, "%s: header is not valid JSON (near byte %ld)", path,
                                    end_ptr ? (long)(end_ptr - hdr) + 8 : -1L);
    mms_status rc = MMS_OK;
    if (!cJSON_IsObject(root)) {
        rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: header JSON is not an object", path);
        goto done;
    }
    /* Anything after the JSON must be padding spaces. */
    for (const char *p = end_ptr; p && p < hdr + n; p++)
        if (*p != ' ' && *p != '\0' && *p != '\n' && *p != '\t' && *p != '\r') {
            rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: trailing garbage after header JSON", path);
            goto done;
        }
    uint64_t data_size = fsize - 8 - n;
    const uint8_t *data = base + 8 + n;
    int count = 0;
    for (cJSON *it = root->child; it; it = it->next) count++;
    entry *grown = mms_realloc(w->entries, (size_t)(w->n_entries + count + 1) * sizeof(entry));
    span *spans = mms_malloc((size_t)(count + 1) * sizeof(span));
    if (!grown || !spans) {
        if (grown) w->entries = grown;
        mms_free(spans);
        rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
        goto done;
    }
    w->entries = grown;
    int n_spans = 0;
    for (cJSON *it = root->child; it; it = it->next) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: __metadata__ is not an object", path);
                break;
            }
            continue;
        }
        const char *name = it->string;
        cJSON *jd = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *js = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *jo = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo)) {
            rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: tensor '%s': entry needs dtype, shape and data_offsets", path, name);
            break;
        }
        mms_dtype dt;
        const char *bad = NULL;
        size_t esize = 0;
        if (!parse_dtype(jd->valuestring, &dt, &bad, &esize)) {
            rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", path, name, jd->valuestring);
            break;
        }
        int ndim = cJSON_GetArraySize(js);
        if (ndim > MMS_MAX_DIMS) {
            rc = mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: tensor '%s': rank %d exceeds %d", path, name, ndim, MMS_MAX_DIMS);
            break;
        }
        int64_t ne[MMS_MAX_DIMS];
        uint64_t numel = 1, extent = 1; /* extent: the product of the non-zero dims (strides) */
        int ok = 1, huge = 0;
        int d = 0;
        for (cJSON *s = js->child; s; s = s->next, d++) {
            uint64_t v;
            if (!json_uint(s, &v)) {
                if (cJSON_IsNumber(s) && s->valuedouble > 9007199254740992.0) huge = 1; /* past 2^53 */
                else ok = 0;
                break;
            }
            /* no file holds 2^48 elements: refusing here keeps every size and stride product below
             * overflow (zero-sized dims included: (0, 2^40, 2^40) has byte strides too) */
            const uint64_t m = v ? v : 1;
            if (v > ((uint64_t)1 << 48) || extent > ((uint64_t)1 << 48) / m) { huge = 1; break; }
            ne[d] = (int64_t)v;
            numel *= v;
            extent *= m;
        }
        if (!ok || huge) {
            rc = mms_error_set(err, MMS_ERR_FORMAT, huge ? "%s: tensor '%s': shape declares more than 2^48 elements"
                                                         : "%s: tensor '%s': shape must be non-negative integers", path, name);
            break;
        }
        uint64_t b0, b1;
        if (cJSON_GetArraySize(jo) != 2 || !json_uint(cJSON_GetArrayItem(jo, 0), &b0) ||
            !json_uint(cJSON_GetArrayItem(jo, 1), &b1) || b1 < b0) {
            rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: tensor '%s': data_offsets must be [begin, end] with begin <= end", path, name);
            break;
        }
        if (b1 > data_size) {
            rc = mms_error_set(err, MMS_ERR_FORMAT,
                               "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data (%llu bytes; file truncated?)",
                               path, name, (unsigned long long)b0, (unsigned long long)b1, (unsigned long long)data_size);
            break;
        }
        if (numel > UINT64_MAX / esize || numel * esize != b1 - b0) {
            rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: tensor '%s': shape x %s size = %llu bytes but data_offsets span %llu",
                               path, name, jd->valuestring, (unsigned long long)(numel * esize), (unsigned long long)(b1 - b0));
            break;
        }
        entry *e = &w->entries[w->n_entries];
        memset(e, 0, sizeof *e);
        e->name = mms_strdup(name);
        if (!e->name) {
            rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
            break;
        }
        e->file = fi;
        e->bad_dtype = bad;
        e->t = mms_tensor_view((void *)(data + b0), bad ? MMS_DTYPE_U8 : dt, ndim, ne);
        if (bad) e->t.dtype = DTYPE_UNSUPPORTED;
        w->n_entries++;
        w->bytes += (int64_t)(b1 - b0);
        spans[n_spans++] = (span){b0, b1, e->name};
    }
    if (rc == MMS_OK) {
        qsort(spans, (size_t)n_spans, sizeof(span), cmp_span);
        for (int i = 1; i < n_spans; i++) {
            if (spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin) {
                rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: tensors '%s' and '%s' have overlapping data_offsets", path,
                                   spans[i - 1].name, spans[i].name);
                break;
            }
        }
    }
    mms_free(spans);
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- opening ------------------------------------------------------------------------- */

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = mms_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static mms_status add_file(mms_weights *w, const char *path, mms_error *err) {
    for (int i = 0; i < w->n_files; i++)
        if (strcmp(w->files[i].path, path) == 0) return MMS_OK;
    mapped_file *g = mms_realloc(w->files, (size_t)(w->n_files + 1) * sizeof *g);
    if (!g) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    w->files = g;
    mapped_file *f = &w->files[w->n_files];
    f->path = mms_strdup(path);
    if (!f->path) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    mms_status rc = mms_map_file(path, (w->flags & MMS_WEIGHTS_IN_MEMORY) ? MMS_MAP_IN_MEMORY : 0, &f->map, err);
    if (rc != MMS_OK) {
        mms_free(f->path);
        return rc;
    }
    w->n_files++;
    return parse_file(w, w->n_files - 1, err);
}

static char *read_text(const char *path, mms_error *err) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        mms_error_set(err, errno == ENOENT ? MMS_ERR_NOT_FOUND : MMS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (n < 0 || n > (64l << 20)) {
        fclose(fp);
        mms_error_set(err, MMS_ERR_FORMAT, "%s: unreasonable size", path);
        return NULL;
    }
    char *buf = mms_malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        fclose(fp);
        mms_free(buf);
        mms_error_set(err, MMS_ERR_IO, "%s: read failed", path);
        return NULL;
    }
    buf[n] = 0;
    fclose(fp);
    return buf;
}

/* Sharded checkpoint: map every shard named in weight_map and check each name is there. */
static mms_status open_index(mms_weights *w, const char *index_path, mms_error *err) {
    char *text = read_text(index_path, err);
    if (!text) return err ? err->code : MMS_ERR_IO;
    cJSON *root = cJSON_Parse(text);
    mms_free(text);
    if (!root) return mms_error_set(err, MMS_ERR_FORMAT, "%s: not valid JSON", index_path);
    mms_status rc = MMS_OK;
    cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    char *dir = mms_strdup(index_path);
    if (!dir) { cJSON_Delete(root); return mms_error_set(err, MMS_ERR_NOMEM, "out of memory"); }
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else strcpy(dir, ".");
    if (!cJSON_IsObject(map)) {
        rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: missing object 'weight_map'", index_path);
        goto done;
    }
    for (cJSON *it = map->child; it && rc == MMS_OK; it = it->next) {
        if (!cJSON_IsString(it) || strchr(it->valuestring, '/') || strstr(it->valuestring, "..")) {
            rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: weight_map['%s'] must be a shard file name", index_path, it->string);
            break;
        }
        char *p = join_path(dir, it->valuestring);
        if (!p) { rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory"); break; }
        rc = add_file(w, p, err);
        mms_free(p);
    }
    if (rc != MMS_OK) goto done;
    /* entries is still NULL after an empty weight_map, and qsort must not get NULL */
    if (w->n_entries) qsort(w->entries, (size_t)w->n_entries, sizeof(entry), cmp_entry_name);
    for (cJSON *it = map->child; it; it = it->next) {
        entry key = {.name = it->string};
        entry *e = bsearch(&key, w->entries, (size_t)w->n_entries, sizeof(entry), cmp_entry_name);
        if (!e) {
            rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: tensor '%s' is listed in weight_map but missing from shard %s",
                               index_path, it->string, it->valuestring);
            break;
        }
    }
done:
    mms_free(dir);
    cJSON_Delete(root);
    return rc;
}

static mms_status find_single(const char *dir, char **out, mms_error *err) {
    DIR *d = opendir(dir);
    if (!d) return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: cannot open directory", dir);
    struct dirent *de;
    char *found = NULL;
    int n = 0;
    while ((de = readdir(d))) {
        if (ends_with(de->d_name, ".safetensors")) {
            n++;
            if (!found) found = join_path(dir, de->d_name);
        }
    }
    closedir(d);
    if (n != 1) {
        mms_free(found);
        if (n) return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: %d .safetensors files but no model.safetensors.index.json", dir, n);
        return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no model.safetensors, model.safetensors.index.json or *.safetensors file", dir);
    }
    *out = found;
    return MMS_OK;
}

mms_status mms_weights_open(const char *path, const char *filename, mms_weights **out, mms_error *err) {
    return mms_weights_open_ex(path, filename, 0, out, err);
}

mms_status mms_weights_open_ex(const char *path, const char *filename, int flags, mms_weights **out, mms_error *err) {
    *out = NULL;
    struct stat st;
    if (!path || stat(path, &st) != 0) return mms_error_set(err, MMS_ERR_NOT_FOUND, "%s: no such file or directory", path ? path : "(null)");
    mms_weights *w = mms_calloc(1, sizeof *w);
    if (!w) return mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
    w->flags = flags;
    mms_status rc = MMS_OK;
    int sorted = 0;
    if (S_ISDIR(st.st_mode)) {
        char *idx = NULL, *single = NULL;
        if (filename) {
            char *p = join_path(path, filename);
            char *ip = NULL;
            size_t L = strlen(filename);
            /* foo.safetensors -> foo.safetensors.index.json also accepted */
            if (p && (ip = mms_malloc(strlen(p) + 12))) { strcpy(ip, p); strcat(ip, ".index.json"); }
            (void)L;
            if (ip && is_file(ip)) idx = ip; else { mms_free(ip); single = p; p = NULL; }
            mms_free(p);
        } else {
            idx = join_path(path, "model.safetensors.index.json");
            if (idx && !is_file(idx)) { mms_free(idx); idx = NULL; }
            if (!idx) {
                single = join_path(path, "model.safetensors");
                if (single && !is_file(single)) {
                    mms_free(single);
                    single = NULL;
                    rc = find_single(path, &single, err);
                }
            }
        }
        if (rc == MMS_OK) {
            if (idx) { rc = open_index(w, idx, err); sorted = 1; }
            else if (single) rc = add_file(w, single, err);
            else rc = mms_error_set(err, MMS_ERR_NOMEM, "out of memory");
        }
        mms_free(idx);
        mms_free(single);
    } else if (ends_with(path, ".json")) {
        rc = open_index(w, path, err);
        sorted = 1;
    } else {
        rc = add_file(w, path, err);
    }
    if (rc == MMS_OK && !sorted) qsort(w->entries, (size_t)w->n_entries, sizeof(entry), cmp_entry_name);
    if (rc == MMS_OK) {
        for (int i = 1; i < w->n_entries; i++)
            if (strcmp(w->entries[i].name, w->entries[i - 1].name) == 0) {
                rc = mms_error_set(err, MMS_ERR_FORMAT, "%s: tensor '%s' appears twice",
                                   w->files[w->entries[i].file].path, w->entries[i].name);
                break;
            }
    }
    if (rc != MMS_OK) {
        mms_weights_close(w);
        return rc;
    }
    *out = w;
    return MMS_OK;
}

void mms_weights_close(mms_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_entries; i++) mms_free(w->entries[i].name);
    for (int i = 0; i < w->n_files; i++) {
        mms_storage_release(w->files[i].map);
        mms_free(w->files[i].path);
    }
    mms_free(w->entries);
    mms_free(w->files);
    mms_free(w);
}

int mms_weights_count(const mms_weights *w) { return w->n_entries; }
const char *mms_weights_name(const mms_weights *w, int i) { return w->entries[i].name; }
const char *mms_weights_file_of(const mms_weights *w, int i) { return w->files[w->entries[i].file].path; }

mms_status mms_weights_mapset(const mms_weights *w, mms_mapset *set, mms_error *err) {
    for (int i = 0; i < w->n_files; i++) {
        mms_status rc = mms_mapset_add(set, w->files[i].map, err);
        if (rc != MMS_OK) return rc;
    }
    return MMS_OK;
}
int64_t mms_weights_bytes(const mms_weights *w) { return w->bytes; }

static const entry *find_exact(const mms_weights *w, const char *name) {
    entry key = {.name = (char *)name};
    if (w->n_entries == 0) return NULL; /* entries may be NULL, which bsearch must not get */
    return bsearch(&key, w->entries, (size_t)w->n_entries, sizeof(entry), cmp_entry_name);
}

static const entry *find_entry(const mms_weights *w, const char *name) {
    for (int i = 0; i < w->n_ren; i++) {
        size_t n = strlen(w->ren_from[i]);
        if (strncmp(name, w->ren_from[i], n) == 0) {
            char full[1024];
            snprintf(full, sizeof full, "%s%s", w->ren_to[i], name + n);
            return find_exact(w, full);
        }
    }
    return find_exact(w, name);
}

const char *mms_weights_stored_name(const mms_weights *w, const char *name) {
    const entry *e = find_entry(w, name);
    return e ? e->name : NULL;
}

mms_status mms_weights_set_renames(mms_weights *w, const char *const *pairs, int n, mms_error *err) {
    if (n < 0 || n > MMS_WEIGHTS_MAX_RENAMES)
        return mms_error_set(err, MMS_ERR_VALUE, "at most %d weight-name renames", MMS_WEIGHTS_MAX_RENAMES);
    for (int i = 0; i < n; i++)
        if (strlen(pairs[2 * i]) >= 64 || strlen(pairs[2 * i + 1]) >= 64)
            return mms_error_set(err, MMS_ERR_VALUE, "weight-name prefix too long");
    for (int i = 0; i < n; i++) {
        strcpy(w->ren_from[i], pairs[2 * i]);
        strcpy(w->ren_to[i], pairs[2 * i + 1]);
    }
    w->n_ren = n;
    return MMS_OK;
}

const mms_tensor *mms_weights_find(const mms_weights *w, const char *name) {
    const entry *e = find_entry(w, name);
    return e && !e->bad_dtype ? &e->t : NULL;
}

mms_status mms_weights_get(const mms_weights *w, const char *name, mms_tensor *out, mms_error *err) {
    const entry *e = find_entry(w, name);
    if (!e) {
        for (int i = 0; i < w->n_ren; i++)
            if (strncmp(name, w->ren_from[i], strlen(w->ren_from[i])) == 0)
                return mms_error_set(err, MMS_ERR_NOT_FOUND, "tensor '%s%s' not found in checkpoint %s%s", w->ren_to[i],
                                     name + strlen(w->ren_from[i]), w->n_files ? w->files[0].path : "?",
                                     w->n_files > 1 ? " (sharded)" : "");
        return mms_error_set(err, MMS_ERR_NOT_FOUND, "tensor '%s' not found in checkpoint %s%s", name,
                             w->n_files ? w->files[0].path : "?", w->n_files > 1 ? " (sharded)" : "");
    }
    if (e->bad_dtype)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which mmsuite cannot compute with",
                             w->files[e->file].path, name, e->bad_dtype);
    *out = e->t;
    out->storage = w->files[e->file].map;
    mms_storage_retain(out->storage);
    return MMS_OK;
}
