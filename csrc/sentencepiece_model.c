/* sentencepiece_model.c -- reading a sentencepiece ModelProto (protobuf wire format, read
 * here without a protobuf library) into an mms_sp_tokenizer: pieces, the piece trie, the
 * reserved-piece table, the normalizer specs with their precompiled charsmaps; the checks
 * sentencepiece's loader makes; the property getters.
 *
 * Only the fields the tokenizer uses are read (sentencepiece_model.proto numbers below);
 * every other field is skipped as protobuf skips unknown fields. */
#include "sentencepiece_internal.h"

#include <float.h>
#include <stdio.h>
#include <string.h>

#include "text_util.h"

#define MAX_PIECES (1 << 26) /* far above any real vocabulary; ids must fit int32 */

/* ==== protobuf wire format ================================================================= */

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

/* A message being read: bytes [p, end) of the buffer that starts at base. */
typedef struct pb_reader {
    const uint8_t *base, *p, *end;
} pb_reader;

/* One field: its number and wire type, with the payload (varint value, fixed bits, or
 * the bytes of a length-delimited field). */
typedef struct pb_field {
    uint32_t number;
    int wire;
    uint64_t u;           /* WIRE_VARINT / WIRE_I32 / WIRE_I64 */
    const uint8_t *data;  /* WIRE_LEN */
    size_t len;
} pb_field;

static int pb_varint(pb_reader *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return -1;
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1; /* more than 10 bytes */
}

/* Read the next field of r into f. Returns 1 for a field, 0 at the end of the message,
 * -1 on malformed bytes (with a message in err naming the byte offset). */
static int pb_next(pb_reader *r, pb_field *f, const char *name, const char *what, mms_error *err) {
    if (r->p >= r->end) return 0;
    size_t at = (size_t)(r->p - r->base);
    uint64_t tag;
    if (pb_varint(r, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF)
        goto bad;
    f->number = (uint32_t)(tag >> 3);
    f->wire = (int)(tag & 7);
    switch (f->wire) {
    case WIRE_VARINT:
        if (pb_varint(r, &f->u)) goto bad;
        return 1;
    case WIRE_I64:
    case WIRE_I32: {
        size_t n = f->wire == WIRE_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n) goto bad;
        f->u = 0;
        for (size_t i = 0; i < n; i++) f->u |= (uint64_t)r->p[i] << (8 * i);
        r->p += n;
        return 1;
    }
    case WIRE_LEN: {
        uint64_t n;
        if (pb_varint(r, &n) || n > (uint64_t)(r->end - r->p)) goto bad;
        f->data = r->p;
        f->len = (size_t)n;
        r->p += n;
        return 1;
    }
    default: /* groups (3, 4) are not used by sentencepiece; 6, 7 do not exist */
        goto bad;
    }
bad:
    mms_error_set(err, MMS_ERR_FORMAT, "%s: not a SentencePiece model: malformed protobuf %s at byte %zu",
                  name, what, at);
    return -1;
}

static pb_reader pb_sub(const pb_reader *parent, const pb_field *f) {
    return (pb_reader){parent->base, f->data, f->data + f->len};
}

static float pb_float(uint64_t bits) {
    uint32_t b = (uint32_t)bits;
    float x;
    memcpy(&x, &b, sizeof x);
    return x;
}

/* ==== the ModelProto fields we read ========================================================= */

/* A string borrowed from the file. */
typedef struct pb_str {
    const char *s;
    size_t n;
} pb_str;

#define PB_STR(lit) ((pb_str){lit, sizeof(lit) - 1})

/* NormalizerSpec (ModelProto fields 3 and 5). */
typedef struct spec_normalizer {
    int present;
    pb_str name;                        /* 1 */
    pb_str charsmap;                    /* 2 precompiled_charsmap */
    int add_dummy_prefix;               /* 3, default true */
    int remove_extra_whitespaces;       /* 4, default true */
    int escape_whitespaces;             /* 5, default true */
} spec_normalizer;

/* TrainerSpec (ModelProto field 2). */
typedef struct spec_trainer {
    int model_type;                     /* 3, UNIGRAM = 1 (default), BPE = 2, WORD = 3, CHAR = 4 */
    int treat_whitespace_as_suffix;     /* 24 */
    int byte_fallback;                  /* 35 */
    pb_str unk_surface;                 /* 44, default " \u2047 " */
    pb_str unk_piece, bos_piece, eos_piece, pad_piece; /* 45..48 */
} spec_trainer;

/* One ModelProto.SentencePiece (field 1). */
typedef struct spec_piece {
    pb_str piece; /* 1 */
    float score;  /* 2 */
    int type;     /* 3, default NORMAL */
} spec_piece;

static void normalizer_defaults(spec_normalizer *s) {
    memset(s, 0, sizeof *s);
    s->add_dummy_prefix = s->remove_extra_whitespaces = s->escape_whitespaces = 1;
}

/* Fields of a repeated message appear once per element; a singular message met twice is
 * merged, later scalars winning (protobuf's rule), which reading into the same struct does. */
static int read_normalizer(pb_reader r, spec_normalizer *s, const char *name, mms_error *err) {
    pb_field f;
    int k;
    s->present = 1;
    while ((k = pb_next(&r, &f, name, "normalizer_spec", err)) > 0) {
        if (f.number == 1 && f.wire == WIRE_LEN) s->name = (pb_str){(const char *)f.data, f.len};
        else if (f.number == 2 && f.wire == WIRE_LEN) s->charsmap = (pb_str){(const char *)f.data, f.len};
        else if (f.number == 3 && f.wire == WIRE_VARINT) s->add_dummy_prefix = f.u != 0;
        else if (f.number == 4 && f.wire == WIRE_VARINT) s->remove_extra_whitespaces = f.u != 0;
        else if (f.number == 5 && f.wire == WIRE_VARINT) s->escape_whitespaces = f.u != 0;
    }
    return k;
}

static int read_trainer(pb_reader r, spec_trainer *s, const char *name, mms_error *err) {
    pb_field f;
    int k;
    while ((k = pb_next(&r, &f, name, "trainer_spec", err)) > 0) {
        pb_str str = {(const char *)f.data, f.len};
        if (f.wire == WIRE_VARINT) {
            /* An enum value the schema lacks is kept aside by protobuf: the field stays. */
            if (f.number == 3 && f.u >= 1 && f.u <= 4) s->model_type = (int)f.u;
            else if (f.number == 24) s->treat_whitespace_as_suffix = f.u != 0;
            else if (f.number == 35) s->byte_fallback = f.u != 0;
        } else if (f.wire == WIRE_LEN) {
            if (f.number == 44) s->unk_surface = str;
            else if (f.number == 45) s->unk_piece = str;
            else if (f.number == 46) s->bos_piece = str;
            else if (f.number == 47) s->eos_piece = str;
            else if (f.number == 48) s->pad_piece = str;
        }
    }
    return k;
}

static int read_piece(pb_reader r, spec_piece *p, const char *name, mms_error *err) {
    pb_field f;
    int k;
    while ((k = pb_next(&r, &f, name, "piece", err)) > 0) {
        if (f.number == 1 && f.wire == WIRE_LEN) p->piece = (pb_str){(const char *)f.data, f.len};
        else if (f.number == 2 && f.wire == WIRE_I32) p->score = pb_float(f.u);
        else if (f.number == 3 && f.wire == WIRE_VARINT && f.u >= 1 && f.u <= 6) p->type = (int)f.u;
    }
    return k;
}

/* The whole ModelProto: pieces into *pieces (mms_malloc'd), the specs into the structs. */
static mms_status read_model(const uint8_t *data, size_t len, const char *name, spec_piece **pieces,
                             size_t *n_pieces, spec_trainer *trainer, spec_normalizer *norm,
                             spec_normalizer *denorm, mms_error *err) {
    pb_reader top = {data, data, data + len};
    pb_field f;
    int k;
    size_t n = 0;
    *pieces = NULL;
    *n_pieces = 0;
    /* First pass: check the framing and count the pieces. */
    pb_reader r = top;
    while ((k = pb_next(&r, &f, name, "field", err)) > 0) n += f.number == 1 && f.wire == WIRE_LEN;
    if (k < 0) return err ? err->code : MMS_ERR_FORMAT;
    if (n > MAX_PIECES)
        return mms_error_set(err, MMS_ERR_FORMAT, "%s: %zu pieces, more than the %d supported", name, n, MAX_PIECES);
    spec_piece *out = mms_calloc(n + 1, sizeof *out);
    if (!out) return mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", name);
    memset(trainer, 0, sizeof *trainer);
    trainer->model_type = 1;
    trainer->unk_surface = PB_STR(" \xE2\x81\x87 ");
    trainer->unk_piece = PB_STR("<unk>");
    trainer->bos_piece = PB_STR("<s>");
    trainer->eos_piece = PB_STR("</s>");
    trainer->pad_piece = PB_STR("<pad>");
    normalizer_defaults(norm);
    normalizer_defaults(denorm);
    size_t i = 0;
    r = top;
    while ((k = pb_next(&r, &f, name, "field", err)) > 0) {
        if (f.wire != WIRE_LEN) continue;
        pb_reader sub = pb_sub(&r, &f);
        if (f.number == 1) {
            out[i].type = MMS_SP_PIECE_TYPE_NORMAL;
            k = read_piece(sub, &out[i++], name, err);
        } else if (f.number == 2) {
            k = read_trainer(sub, trainer, name, err);
        } else if (f.number == 3) {
            k = read_normalizer(sub, norm, name, err);
        } else if (f.number == 5) {
            k = read_normalizer(sub, denorm, name, err);
        }
        if (k < 0) break;
    }
    if (k < 0) {
        mms_free(out);
        return err ? err->code : MMS_ERR_FORMAT;
    }
    *pieces = out;
    *n_pieces = n;
    return MMS_OK;
}

/* ==== tables ================================================================================ */

static int32_t *reserved_slot(const mms_sp_tokenizer *t, const char *s, size_t n) {
    return mms_str_slot(t->reserved, t->reserved_mask, t->pool, t->off, t->len, s, n);
}

static int32_t reserved_find(const mms_sp_tokenizer *t, const char *s, size_t n) { return *reserved_slot(t, s, n); }

/* Insert a reserved piece; 1 if its string is already there. */
static int reserved_insert(mms_sp_tokenizer *t, int32_t id) {
    int32_t *slot = reserved_slot(t, t->pool + t->off[id], (size_t)t->len[id]);
    if (*slot >= 0) return 1;
    *slot = id;
    return 0;
}

/* Node for (node, byte), created if absent; -1 when out of node capacity (cannot happen:
 * capacity is the total piece length). */
static int32_t trie_add_child(sp_trie *t, int32_t node, uint8_t b, int32_t cap) {
    uint64_t key = ((uint64_t)(uint32_t)node << 8 | b) + 1;
    for (size_t i = sp_edge_hash(key, t->mask);; i = (i + 1) & t->mask) {
        if (t->edge_key[i] == key) return t->edge_child[i];
        if (t->edge_key[i] == 0) {
            if (t->n_nodes >= cap) return -1;
            t->edge_key[i] = key;
            t->edge_child[i] = t->n_nodes;
            t->piece[t->n_nodes] = -1;
            return t->n_nodes++;
        }
    }
}

/* Trie of the NORMAL / USER_DEFINED / UNUSED pieces. A repeated string is an error, as in
 * the library (the caller reports it: *dup gets the later id). */
static mms_status trie_build(mms_sp_tokenizer *t, int32_t *dup, mms_error *err, const char *name) {
    size_t total = 1;
    for (int32_t i = 0; i < t->n_pieces; i++) total += (size_t)t->len[i];
    if (total > INT32_MAX / 2)
        return mms_error_set(err, MMS_ERR_FORMAT, "%s: pieces too long (%zu bytes)", name, total);
    sp_trie *tr = &t->trie;
    tr->mask = mms_pow2_at_least(2 * total) - 1;
    tr->piece = mms_malloc(total * sizeof *tr->piece);
    tr->edge_key = mms_calloc(tr->mask + 1, sizeof *tr->edge_key);
    tr->edge_child = mms_malloc((tr->mask + 1) * sizeof *tr->edge_child);
    if (!tr->piece || !tr->edge_key || !tr->edge_child)
        return mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", name);
    tr->piece[0] = -1;
    tr->n_nodes = 1;
    *dup = -1;
    for (int32_t id = 0; id < t->n_pieces; id++) {
        int ty = t->type[id];
        if (ty != MMS_SP_PIECE_TYPE_NORMAL && ty != MMS_SP_PIECE_TYPE_USER_DEFINED && ty != MMS_SP_PIECE_TYPE_UNUSED)
            continue;
        const uint8_t *s = (const uint8_t *)t->pool + t->off[id];
        int32_t node = 0;
        for (int32_t j = 0; j < t->len[id] && node >= 0; j++) node = trie_add_child(tr, node, s[j], (int32_t)total);
        if (node < 0) return mms_error_set(err, MMS_ERR_INTERNAL, "%s: trie overflow", name);
        if (tr->piece[node] >= 0) {
            *dup = id;
            return MMS_ERR_FORMAT;
        }
        tr->piece[node] = id;
    }
    return MMS_OK;
}

int32_t mms_sp_piece_lookup(const mms_sp_tokenizer *t, const char *s, size_t n) {
    int32_t id = reserved_find(t, s, n);
    if (id >= 0 || n == 0) return id;
    int32_t node = 0;
    for (size_t i = 0; i < n && node >= 0; i++) node = sp_trie_child(&t->trie, node, (uint8_t)s[i]);
    return node >= 0 ? t->trie.piece[node] : -1;
}

/* "<0xAB>" (upper-case hex, as the library writes them) -> 0xAB, else -1. */
static int byte_piece_value(const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *hi = memchr(hex, s[3], 16), *lo = memchr(hex, s[4], 16);
    if (!s[3] || !s[4] || !hi || !lo) return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

/* Decode a precompiled charsmap: <uint32 LE trie size><double array><strings>. */
static mms_status normalizer_init(sp_normalizer *n, const spec_normalizer *spec, int ws_suffix,
                                  int match_user_defined, const char *name, const char *which,
                                  mms_error *err) {
    memset(n, 0, sizeof *n);
    n->add_dummy_prefix = spec->add_dummy_prefix;
    n->remove_extra_whitespaces = spec->remove_extra_whitespaces;
    n->escape_whitespaces = spec->escape_whitespaces;
    n->treat_whitespace_as_suffix = ws_suffix;
    n->match_user_defined = match_user_defined;
    if (spec->charsmap.n == 0) return MMS_OK;
    const uint8_t *b = (const uint8_t *)spec->charsmap.s;
    size_t blob = spec->charsmap.n;
    if (blob <= 4)
        return mms_error_set(err, MMS_ERR_FORMAT, "%s: %s precompiled_charsmap is broken (%zu bytes)", name, which, blob);
    uint32_t trie_size = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (trie_size >= blob)
        return mms_error_set(err, MMS_ERR_FORMAT, "%s: %s precompiled_charsmap: trie of %u bytes in a blob of %zu",
                             name, which, trie_size, blob);
    n->n_units = trie_size / 4;
    n->strings_len = blob - 4 - trie_size;
    n->units = mms_malloc((n->n_units + 1) * sizeof *n->units);
    n->strings = mms_malloc(n->strings_len + 1);
    if (!n->units || !n->strings) return mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < n->n_units; i++) {
        const uint8_t *u = b + 4 + 4 * i;
        n->units[i] = (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    memcpy(n->strings, b + 4 + trie_size, n->strings_len);
    n->strings[n->strings_len] = '\0';
    if (n->n_units == 0) { /* an empty double array matches nothing */
        mms_free(n->units);
        n->units = NULL;
    }
    return MMS_OK;
}

static void normalizer_free(sp_normalizer *n) {
    mms_free(n->units);
    mms_free(n->strings);
}

static char *dup_str(pb_str s) {
    char *p = mms_malloc(s.n + 1);
    if (p) {
        if (s.n) memcpy(p, s.s, s.n);
        p[s.n] = '\0';
    }
    return p;
}

/* A piece for an error message: printable ASCII as it is, other bytes as \xHH, at most 40
 * bytes of it (messages must stay valid UTF-8 for the Python binding). */
static const char *msg_piece(const mms_sp_tokenizer *t, int32_t id, char buf[200]) {
    const uint8_t *s = (const uint8_t *)t->pool + t->off[id];
    size_t n = (size_t)t->len[id], o = 0;
    for (size_t i = 0; i < n && i < 40; i++) {
        if (s[i] >= 0x20 && s[i] < 0x7F) buf[o++] = (char)s[i];
        else o += (size_t)snprintf(buf + o, 5, "\\x%02X", s[i]);
    }
    if (n > 40) memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
    return buf;
}

/* ==== create / free ========================================================================== */

void mms_sp_tokenizer_free(mms_sp_tokenizer *t) {
    if (!t) return;
    mms_free(t->pool);
    mms_free(t->off);
    mms_free(t->len);
    mms_free(t->score);
    mms_free(t->type);
    mms_free(t->trie.piece);
    mms_free(t->trie.edge_key);
    mms_free(t->trie.edge_child);
    mms_free(t->reserved);
    mms_free(t->unk_surface);
    mms_free(t->normalizer_name);
    mms_free(t->name);
    normalizer_free(&t->norm);
    normalizer_free(&t->denorm);
    mms_free(t);
}

/* The processor's id for a special piece name: the piece, if it has the wanted type. */
static int32_t special_id(const mms_sp_tokenizer *t, pb_str s, int type) {
    int32_t id = mms_sp_piece_lookup(t, s.s, s.n);
    if (id < 0) id = t->unk_piece; /* PieceToId's answer for a missing piece */
    return id >= 0 && t->type[id] == type ? id : -1;
}

static mms_status build(const spec_piece *pieces, size_t n, const spec_trainer *tr, const spec_normalizer *ns,
                        const spec_normalizer *ds, const char *name, mms_sp_tokenizer **out, mms_error *err) {
    if (tr->model_type == 3 || tr->model_type == 4)
        return mms_error_set(err, MMS_ERR_UNSUPPORTED, "%s: %s SentencePiece models are not supported "
                             "(only BPE and unigram)", name, tr->model_type == 3 ? "WORD" : "CHAR");
    if (n == 0) return mms_error_set(err, MMS_ERR_FORMAT, "%s: not a SentencePiece model: no pieces", name);
    mms_sp_tokenizer *t = mms_calloc(1, sizeof *t);
    if (!t) return mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", name);
    mms_status st = MMS_OK;
    t->model_type = tr->model_type == 2 ? MMS_SP_MODEL_TYPE_BPE : MMS_SP_MODEL_TYPE_UNIGRAM;
    t->n_pieces = (int32_t)n;
    t->byte_fallback = tr->byte_fallback;
    size_t pool_len = 0;
    for (size_t i = 0; i < n; i++) pool_len += pieces[i].piece.n + 1;
    t->pool = mms_malloc(pool_len);
    t->off = mms_malloc(n * sizeof *t->off);
    t->len = mms_malloc(n * sizeof *t->len);
    t->score = mms_malloc(n * sizeof *t->score);
    t->type = mms_malloc(n);
    t->reserved_mask = mms_pow2_at_least(2 * n) - 1;
    t->reserved = mms_malloc((t->reserved_mask + 1) * sizeof *t->reserved);
    t->unk_surface = dup_str(tr->unk_surface);
    t->normalizer_name = dup_str(ns->name);
    t->name = dup_str((pb_str){name, strlen(name)});
    if (!t->pool || !t->off || !t->len || !t->score || !t->type || !t->reserved || !t->unk_surface ||
        !t->normalizer_name || !t->name) {
        st = mms_error_set(err, MMS_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    t->unk_surface_len = tr->unk_surface.n;
    memset(t->reserved, 0xFF, (t->reserved_mask + 1) * sizeof *t->reserved);
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    t->unk_piece = -1;
    t->min_score = FLT_MAX;
    t->max_score = FLT_MIN;

    /* The checks of the library's ModelInterface::InitializePieces, in its order. */
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const spec_piece *p = &pieces[i];
        int32_t id = (int32_t)i;
        if (p->piece.n == 0) {
            st = mms_error_set(err, MMS_ERR_FORMAT, "%s: piece %d is empty", name, (int)id);
            goto done;
        }
        t->off[i] = (int64_t)pos;
        t->len[i] = (int32_t)p->piece.n;
        memcpy(t->pool + pos, p->piece.s, p->piece.n);
        pos += p->piece.n;
        t->pool[pos++] = '\0';
        t->score[i] = p->score;
        t->type[i] = (uint8_t)p->type;
        char shown[200];
        int ty = p->type;
        if (ty == MMS_SP_PIECE_TYPE_CONTROL || ty == MMS_SP_PIECE_TYPE_UNKNOWN || ty == MMS_SP_PIECE_TYPE_BYTE) {
            if (reserved_insert(t, id)) {
                st = mms_error_set(err, MMS_ERR_FORMAT, "%s: piece %d '%s' is already defined", name, (int)id,
                                   msg_piece(t, id, shown));
                goto done;
            }
        }
        if (ty == MMS_SP_PIECE_TYPE_USER_DEFINED) t->has_user_defined = 1;
        if (ty == MMS_SP_PIECE_TYPE_NORMAL) {
            if (p->score < t->min_score) t->min_score = p->score;
            if (p->score > t->max_score) t->max_score = p->score;
        }
        if (ty == MMS_SP_PIECE_TYPE_UNKNOWN) {
            if (t->unk_piece >= 0) {
                st = mms_error_set(err, MMS_ERR_FORMAT, "%s: unk is already defined (pieces %d and %d)", name,
                                   (int)t->unk_piece, (int)id);
                goto done;
            }
            t->unk_piece = id;
        }
        if (ty == MMS_SP_PIECE_TYPE_BYTE) {
            if (!t->byte_fallback) {
                st = mms_error_set(err, MMS_ERR_FORMAT, "%s: byte piece %s (%d) is found although "
                                   "byte_fallback is false", name, msg_piece(t, id, shown), (int)id);
                goto done;
            }
            int b = byte_piece_value(t->pool + t->off[i], (size_t)t->len[i]);
            if (b < 0) {
                st = mms_error_set(err, MMS_ERR_FORMAT, "%s: byte piece %s (%d) is invalid", name,
                                   msg_piece(t, id, shown), (int)id);
                goto done;
            }
            t->byte_id[b] = id;
        }
    }
    int32_t dup = -1;
    st = trie_build(t, &dup, err, name);
    if (st == MMS_OK && t->model_type == MMS_SP_MODEL_TYPE_BPE) {
        /* the library's BPE model keeps all pieces in one map: a control / unk / byte piece may
         * not repeat a normal one either (unigram keeps two maps and allows it) */
        for (int32_t id = 0; id < t->n_pieces; id++) {
            int ty = t->type[id];
            if (ty != MMS_SP_PIECE_TYPE_CONTROL && ty != MMS_SP_PIECE_TYPE_UNKNOWN && ty != MMS_SP_PIECE_TYPE_BYTE)
                continue;
            int32_t node = 0;
            for (int32_t j = 0; j < t->len[id] && node >= 0; j++)
                node = sp_trie_child(&t->trie, node, (uint8_t)t->pool[t->off[id] + j]);
            int32_t other = node >= 0 ? t->trie.piece[node] : -1, later = other > id ? other : id;
            if (other >= 0 && (dup < 0 || later < dup)) dup = later;
        }
        if (dup >= 0) st = MMS_ERR_FORMAT;
    }
    if (st == MMS_ERR_FORMAT && dup >= 0) {
        char shown[200];
        st = mms_error_set(err, MMS_ERR_FORMAT, "%s: piece %d '%s' is already defined", name, (int)dup,
                           msg_piece(t, dup, shown));
        goto done;
    }
    if (st) goto done;
    if (t->unk_piece < 0) {
        st = mms_error_set(err, MMS_ERR_FORMAT, "%s: unk is not defined (no piece of type UNKNOWN)", name);
        goto done;
    }
    if (t->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0) {
                st = mms_error_set(err, MMS_ERR_FORMAT, "%s: byte_fallback is true but piece <0x%02X> is missing",
                                   name, b);
                goto done;
            }
    if (t->model_type == MMS_SP_MODEL_TYPE_UNIGRAM && t->trie.n_nodes == 1) {
        st = mms_error_set(err, MMS_ERR_FORMAT, "%s: unigram model without a normal piece", name);
        goto done;
    }
    st = normalizer_init(&t->norm, ns, tr->treat_whitespace_as_suffix, t->has_user_defined, name,
                         "normalizer_spec", err);
    if (st) goto done;
    t->has_denorm = ds->present && ds->charsmap.n > 0;
    if (t->has_denorm) {
        st = normalizer_init(&t->denorm, ds, 0, 0, name, "denormalizer_spec", err);
        if (st) goto done;
    }
    t->unk_id = special_id(t, tr->unk_piece, MMS_SP_PIECE_TYPE_UNKNOWN);
    t->bos_id = special_id(t, tr->bos_piece, MMS_SP_PIECE_TYPE_CONTROL);
    t->eos_id = special_id(t, tr->eos_piece, MMS_SP_PIECE_TYPE_CONTROL);
    t->pad_id = special_id(t, tr->pad_piece, MMS_SP_PIECE_TYPE_CONTROL);
done:
    if (st) {
        mms_sp_tokenizer_free(t);
        return st;
    }
    *out = t;
    return MMS_OK;
}

mms_status mms_sp_tokenizer_create(const void *model, size_t len, const char *name, mms_sp_tokenizer **out,
                                   mms_error *err) {
    *out = NULL;
    if (!name) name = "<memory>";
    if (!model && len) return mms_error_set(err, MMS_ERR_VALUE, "%s: model is NULL", name);
    spec_piece *pieces;
    size_t n;
    spec_trainer tr;
    spec_normalizer ns, ds;
    mms_status st = read_model(model, len, name, &pieces, &n, &tr, &ns, &ds, err);
    if (st) return st;
    st = build(pieces, n, &tr, &ns, &ds, name, out, err);
    mms_free(pieces);
    return st;
}

mms_status mms_sp_tokenizer_load(const char *path, mms_sp_tokenizer **out, mms_error *err) {
    *out = NULL;
    char *buf;
    size_t n;
    mms_status st = mms_read_whole_file(path, &buf, &n, err);
    if (st) return st;
    st = mms_sp_tokenizer_create(buf, n, path, out, err);
    mms_free(buf);
    return st;
}

/* ==== properties ============================================================================== */

mms_sp_info mms_sp_tokenizer_info(const mms_sp_tokenizer *t) {
    return (mms_sp_info){
        .model_type = t->model_type,
        .vocab_size = t->n_pieces,
        .unk_id = t->unk_id,
        .bos_id = t->bos_id,
        .eos_id = t->eos_id,
        .pad_id = t->pad_id,
        .byte_fallback = t->byte_fallback,
        .add_dummy_prefix = t->norm.add_dummy_prefix,
        .remove_extra_whitespaces = t->norm.remove_extra_whitespaces,
        .escape_whitespaces = t->norm.escape_whitespaces,
        .treat_whitespace_as_suffix = t->norm.treat_whitespace_as_suffix,
        .has_charsmap = t->norm.units != NULL,
        .has_denormalizer = t->has_denorm,
        .normalizer_name = t->normalizer_name,
    };
}

int64_t mms_sp_tokenizer_piece_to_id(const mms_sp_tokenizer *t, const char *piece, size_t len) {
    return mms_sp_piece_lookup(t, piece, len);
}

const char *mms_sp_tokenizer_id_to_piece(const mms_sp_tokenizer *t, int64_t id, size_t *len) {
    if (id < 0 || id >= t->n_pieces) return NULL;
    if (len) *len = (size_t)t->len[id];
    return t->pool + t->off[id];
}

mms_sp_piece_type mms_sp_tokenizer_piece_type(const mms_sp_tokenizer *t, int64_t id) {
    return id < 0 || id >= t->n_pieces ? MMS_SP_PIECE_TYPE_INVALID : (mms_sp_piece_type)t->type[id];
}

float mms_sp_tokenizer_piece_score(const mms_sp_tokenizer *t, int64_t id) {
    return id < 0 || id >= t->n_pieces ? 0.0f : t->score[id];
}
