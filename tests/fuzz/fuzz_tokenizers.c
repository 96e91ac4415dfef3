/* fuzz_tokenizers.c -- every tokenizer on arbitrary text and arbitrary ids: the CLIP BPE
 * (tokenizer.h), HF tokenizer.json / GPT-2 BPE (tokenizer_hf.h), SentencePiece BPE and
 * unigram (sentencepiece.h) and T5 (tokenizer_t5.h), all built once from the real files in
 * tests/data/tokenizers.
 *
 * Input: byte 0 picks the tokenizer (modulo their number); byte 1 the mode and flags:
 *   bits 0-1  0 encode the rest as raw bytes (any bytes, not NUL-terminated),
 *             1 decode the rest as little-endian int32 ids, 2 as int64 ids (negative and
 *               out-of-vocabulary ids included: an error, never a crash),
 *             3 batch-encode the rest split at 0xFF bytes (context length from byte 2);
 *   bit 2     add specials (HF post-processor, T5 EOS) / skip specials when decoding;
 *   bit 3     HF split_special_tokens; batch: truncate.
 * Invariants: valid UTF-8 always encodes (invalid only fails where the API says so); ids are
 * inside the vocabulary; the ids of an encode decode without error to valid UTF-8;
 * encode_into with a small buffer reports the same count; a decode of an id outside the
 * vocabulary fails; token <-> id round trips for CLIP and SentencePiece. */
#include <zlib.h>

#include "fuzz_util.h"
#include "sentencepiece.h"
#include "tokenizer.h"
#include "tokenizer_hf.h"
#include "tokenizer_t5.h"

enum kind { CLIP, HF, SP, T5 };

typedef struct tok {
    enum kind kind;
    const char *file;
    mms_bpe_tokenizer *clip;
    mms_hf_tokenizer *hf;
    mms_sp_tokenizer *sp; /* also T5's pieces, for decoding its ids */
    mms_t5_tokenizer *t5;
    int64_t vocab;        /* ids are in [0, vocab) */
} tok;

static tok g_toks[] = {
    {.kind = CLIP, .file = "tokenizers/bpe_simple_vocab_16e6.txt.gz"},
    {.kind = HF, .file = "tokenizers/gpt2"}, /* encoder.json + vocab.bpe */
    {.kind = HF, .file = "tokenizers/hf_llama/tokenizer.json"},
    {.kind = HF, .file = "tokenizers/hf_llama3/tokenizer.json"},
    {.kind = HF, .file = "tokenizers/hf_qwen2/tokenizer.json"},
    {.kind = HF, .file = "tokenizers/hf_misc_bytes/tokenizer.json"},
    {.kind = HF, .file = "tokenizers/hf_misc_meta/tokenizer.json"},
    {.kind = SP, .file = "tokenizers/sp_bpe_small.model"},
    {.kind = SP, .file = "tokenizers/sp_unigram_nfkc.model"},
    {.kind = SP, .file = "tokenizers/sp_unigram_bytefb.model"},
    {.kind = SP, .file = "tokenizers/sp_unigram_suffix.model"},
    {.kind = SP, .file = "tokenizers/sp_unigram_noescape.model"},
    {.kind = SP, .file = "tokenizers/mistral_instruct_tokenizer_240323.model.v3"},
    {.kind = T5, .file = "tokenizers/t5/spiece.model"},
};
#define N_TOKS ((int)(sizeof g_toks / sizeof g_toks[0]))

static char *gunzip(const char *rel, size_t *len) {
    gzFile f = gzopen(fuzz_path(rel), "rb");
    if (!f) FUZZ_DIE("cannot open %s", rel);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) FUZZ_DIE("out of memory");
        int got = gzread(f, buf + n, (unsigned)(cap - n));
        if (got < 0) FUZZ_DIE("gzread %s", rel);
        if (got == 0) break;
        n += (size_t)got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    gzclose(f);
    *len = n;
    return buf;
}

static void build(tok *t) {
    mms_error err;
    mms_status st = MMS_OK;
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/%s", t->file);
    if (t->kind == CLIP) {
        size_t n;
        char *text = gunzip(rel, &n);
        st = mms_bpe_tokenizer_create_openai(text, n, MMS_CLIP_N_MERGES, &t->clip, &err);
        free(text);
        if (!st) t->vocab = mms_bpe_tokenizer_vocab_size(t->clip);
    } else if (t->kind == HF && !strstr(t->file, ".json")) {
        char vocab[PATH_MAX], merges[PATH_MAX];
        snprintf(vocab, sizeof vocab, "%s", fuzz_path("tests/data/tokenizers/gpt2/encoder.json"));
        snprintf(merges, sizeof merges, "%s", fuzz_path("tests/data/tokenizers/gpt2/vocab.bpe"));
        st = mms_hf_tokenizer_load_gpt2(vocab, merges, NULL, &t->hf, &err);
        if (!st) t->vocab = mms_hf_tokenizer_vocab_size(t->hf);
    } else if (t->kind == HF) {
        st = mms_hf_tokenizer_load(fuzz_path(rel), NULL, &t->hf, &err);
        if (!st) t->vocab = mms_hf_tokenizer_vocab_size(t->hf);
    } else {
        st = mms_sp_tokenizer_load(fuzz_path(rel), &t->sp, &err);
        if (!st) t->vocab = mms_sp_tokenizer_info(t->sp).vocab_size;
        if (!st && t->kind == T5) {
            /* what transformers' T5Tokenizer adds: pad, eos, unk, 100 sentinels (lstrip/rstrip),
             * plus a normalized non-special token like BLIP-2's "<image>" */
            const int64_t n = t->vocab;
            static char sentinel[100][16];
            mms_t5_added_token added[104] = {
                {"<pad>", 5, 0, 0, 0, 0, 0, 1}, {"</s>", 4, 1, 0, 0, 0, 0, 1}, {"<unk>", 5, 2, 0, 0, 0, 0, 1},
                {"<image>", 7, n + 100, 0, 0, 0, 1, 0}};
            for (int i = 0; i < 100; i++) {
                int k = snprintf(sentinel[i], sizeof sentinel[i], "<extra_id_%d>", i);
                added[4 + i] = (mms_t5_added_token){sentinel[i], (size_t)k, n + 99 - i, 1, 1, 0, 0, 1};
            }
            st = mms_t5_tokenizer_create(t->sp, added, 104, mms_t5_default_params(), &t->t5, &err);
            t->vocab = n + 101;
        }
    }
    if (st != MMS_OK) FUZZ_DIE("cannot build %s: %s", t->file, err.msg);
}

static void free_all(void) {
    for (int i = 0; i < N_TOKS; i++) {
        mms_bpe_tokenizer_free(g_toks[i].clip);
        mms_hf_tokenizer_free(g_toks[i].hf);
        mms_sp_tokenizer_free(g_toks[i].sp);
        mms_t5_tokenizer_free(g_toks[i].t5);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    for (int i = 0; i < N_TOKS; i++) build(&g_toks[i]);
    atexit(free_all);
    return 0;
}

/* ---- decoding ---------------------------------------------------------------------------- */

/* Decode ids (n,) with t: it must fail when an id is outside the vocabulary, and succeed with
 * valid UTF-8 otherwise (or fail for an id no token has). Returns the status. */
static mms_status decode(const tok *t, const int64_t *ids, size_t n, int skip_special) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad |= ids[i] < 0 || ids[i] >= t->vocab;
    char *text = NULL;
    size_t len = 0;
    mms_error err;
    err.msg[0] = 0;
    mms_status st;
    switch (t->kind) {
    case CLIP: st = mms_bpe_tokenizer_decode(t->clip, ids, n, skip_special, &text, &len, &err); break;
    case HF: st = mms_hf_tokenizer_decode(t->hf, ids, n, skip_special, &text, &len, &err); break;
    default: {
        /* T5: decode what the SentencePiece model knows (its pieces); sentinels are Python's */
        int64_t sp_vocab = mms_sp_tokenizer_info(t->sp).vocab_size;
        if (t->kind == T5)
            for (size_t i = 0; i < n; i++) bad |= ids[i] >= sp_vocab;
        st = mms_sp_tokenizer_decode(t->sp, ids, n, &text, &len, &err);
    }
    }
    FUZZ_CHECK(!(bad && st == MMS_OK), "%s: decode accepted an out-of-vocabulary id", t->file);
    FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_VALUE, "%s: decode: %d %s", t->file, st, err.msg);
    if (st == MMS_OK) {
        FUZZ_CHECK(text && text[len] == 0, "%s: decode result not NUL-terminated", t->file);
        FUZZ_CHECK(fuzz_utf8_ok((const uint8_t *)text, len), "%s: decode produced invalid UTF-8", t->file);
    } else {
        FUZZ_CHECK(err.msg[0], "%s: decode failed without a message", t->file);
    }
    mms_free(text);
    return st;
}

/* ---- encoding ---------------------------------------------------------------------------- */

static void encode(const tok *t, const char *text, size_t len, int flags) {
    int64_t *ids = NULL;
    size_t n = 0, n2 = 0;
    int64_t small[2];
    mms_error err;
    err.msg[0] = 0;
    mms_status st, st2;
    const int utf8 = fuzz_utf8_ok((const uint8_t *)text, len);
    switch (t->kind) {
    case CLIP:
        st = mms_bpe_tokenizer_encode(t->clip, text, len, &ids, &n, &err);
        st2 = mms_bpe_tokenizer_encode_into(t->clip, text, len, small, 2, &n2, &err);
        break;
    case HF: {
        int hf = ((flags & 4) ? MMS_HF_ADD_SPECIAL : 0) | ((flags & 8) ? MMS_HF_SPLIT_SPECIAL : 0);
        st = mms_hf_tokenizer_encode(t->hf, text, len, hf, &ids, &n, &err);
        st2 = st, n2 = n;
        break;
    }
    case SP: {
        char *norm = NULL;
        size_t nlen = 0;
        st = mms_sp_tokenizer_normalize(t->sp, text, len, &norm, &nlen, &err);
        FUZZ_CHECK(st == MMS_OK, "%s: normalize: %s", t->file, err.msg);
        FUZZ_CHECK(norm[nlen] == 0 && fuzz_utf8_ok((const uint8_t *)norm, nlen), "%s: normalized text not UTF-8", t->file);
        mms_free(norm);
        st = mms_sp_tokenizer_encode(t->sp, text, len, &ids, &n, &err);
        st2 = mms_sp_tokenizer_encode_into(t->sp, text, len, small, 2, &n2, &err);
        break;
    }
    default: {
        char *norm = NULL;
        size_t nlen = 0;
        st = mms_t5_tokenizer_normalize(t->t5, text, len, &norm, &nlen, &err);
        FUZZ_CHECK(st == MMS_OK || (st == MMS_ERR_VALUE && !utf8), "%s: normalize: %d %s", t->file, st, err.msg);
        if (st == MMS_OK) FUZZ_CHECK(fuzz_utf8_ok((const uint8_t *)norm, nlen), "%s: normalized text not UTF-8", t->file);
        mms_free(norm);
        st = mms_t5_tokenizer_encode(t->t5, text, len, (flags & 4) != 0, &ids, &n, &err);
        st2 = mms_t5_tokenizer_encode_into(t->t5, text, len, (flags & 4) != 0, small, 2, &n2, &err);
    }
    }
    /* only CLIP, HF and T5 require UTF-8; SentencePiece takes any bytes */
    FUZZ_CHECK(st == MMS_OK || (st == MMS_ERR_VALUE && !utf8 && t->kind != SP), "%s: encode: %d %s", t->file, st,
               err.msg);
    FUZZ_CHECK(st == st2 && (st != MMS_OK || n == n2), "%s: encode_into disagrees (%zu vs %zu ids)", t->file, n, n2);
    if (st == MMS_OK) {
        for (size_t i = 0; i < n; i++) /* (the real files' post-processor ids are tokens too) */
            FUZZ_CHECK(ids[i] >= 0 && ids[i] < t->vocab, "%s: id %lld outside the vocabulary", t->file, (long long)ids[i]);
        for (size_t i = 0; i < n && i < 8; i++) {
            if (t->kind == CLIP) {
                const char *s = mms_bpe_tokenizer_id_to_token(t->clip, ids[i]);
                FUZZ_CHECK(s && mms_bpe_tokenizer_token_to_id(t->clip, s, strlen(s)) == ids[i], "%s: token round trip",
                           t->file);
            } else if (t->kind == SP) {
                size_t pl = 0;
                const char *s = mms_sp_tokenizer_id_to_piece(t->sp, ids[i], &pl);
                FUZZ_CHECK(s && mms_sp_tokenizer_piece_to_id(t->sp, s, pl) == ids[i], "%s: piece round trip", t->file);
            } else if (t->kind == HF) {
                size_t tl = 0;
                FUZZ_CHECK(mms_hf_tokenizer_id_to_token(t->hf, ids[i], &tl) != NULL, "%s: id %lld has no token",
                           t->file, (long long)ids[i]);
            }
        }
        if (t->kind != T5) { /* T5 decoding (sentinels, added tokens) lives in Python */
            FUZZ_CHECK(decode(t, ids, n, (flags & 4) != 0) == MMS_OK, "%s: the ids of an encode do not decode",
                       t->file);
        }
    }
    mms_free(ids);
}

/* ---- batches ----------------------------------------------------------------------------- */

static void batch(const tok *t, const char *text, size_t len, int flags, int64_t ctx) {
    const char *texts[8];
    size_t lens[8];
    int64_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len && n < 8; i++)
        if (i == len || (uint8_t)text[i] == 0xff) {
            texts[n] = text + start;
            lens[n++] = i - start;
            start = i + 1;
        }
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)(n * ctx)), *mask = malloc(sizeof(int64_t) * (size_t)(n * ctx));
    int64_t counts[8];
    if (!ids || !mask) FUZZ_DIE("out of memory");
    mms_error err;
    err.msg[0] = 0;
    mms_status st;
    const int truncate = (flags & 8) != 0;
    const int64_t pad = 0;
    switch (t->kind) {
    case CLIP: {
        mms_bpe_batch_params p = mms_bpe_batch_default_params();
        p.context_length = ctx, p.truncate = truncate, p.pad_id = pad, p.add_special = (flags & 4) != 0, p.n_threads = 1;
        st = mms_bpe_tokenizer_encode_batch(t->clip, texts, lens, n, p, ids, mask, counts, &err);
        break;
    }
    case HF: {
        mms_hf_batch_params p = mms_hf_batch_default_params();
        p.context_length = ctx, p.truncate = truncate, p.pad_id = pad, p.n_threads = 1;
        p.flags = (flags & 4) ? MMS_HF_ADD_SPECIAL : 0;
        st = mms_hf_tokenizer_encode_batch(t->hf, texts, lens, n, p, ids, mask, counts, &err);
        break;
    }
    case SP: {
        mms_sp_batch_params p = mms_sp_batch_default_params();
        mms_sp_info info = mms_sp_tokenizer_info(t->sp);
        p.context_length = ctx, p.truncate = truncate, p.pad_id = pad, p.n_threads = 1;
        p.add_bos = (flags & 4) && info.bos_id >= 0;
        p.add_eos = (flags & 4) && info.eos_id >= 0;
        st = mms_sp_tokenizer_encode_batch(t->sp, texts, lens, n, p, ids, mask, counts, &err);
        break;
    }
    default: {
        mms_t5_batch_params p = mms_t5_batch_default_params();
        p.context_length = ctx, p.truncate = truncate, p.pad_id = pad, p.add_eos = (flags & 4) != 0, p.n_threads = 1;
        st = mms_t5_tokenizer_encode_batch(t->t5, texts, lens, n, p, ids, mask, counts, &err);
    }
    }
    FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_VALUE, "%s: encode_batch: %d %s", t->file, st, err.msg);
    if (st == MMS_OK) {
        for (int64_t r = 0; r < n; r++) {
            int64_t on = 0;
            for (int64_t c = 0; c < ctx; c++) {
                int64_t id = ids[r * ctx + c], m = mask[r * ctx + c];
                FUZZ_CHECK(m == 0 || m == 1, "%s: mask value %lld", t->file, (long long)m);
                FUZZ_CHECK(m == 0 ? id == pad : (id >= 0 && id < t->vocab), "%s: batch id %lld (mask %lld)", t->file,
                           (long long)id, (long long)m);
                if (c) FUZZ_CHECK(m <= mask[r * ctx + c - 1], "%s: mask not a prefix", t->file);
                on += m;
            }
            FUZZ_CHECK(on == (counts[r] < ctx ? counts[r] : ctx), "%s: row %lld has %lld tokens, count %lld", t->file,
                       (long long)r, (long long)on, (long long)counts[r]);
        }
    } else {
        FUZZ_CHECK(err.msg[0], "%s: batch failed without a message", t->file);
    }
    free(ids);
    free(mask);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    const tok *t = &g_toks[data[0] % N_TOKS];
    const int mode = data[1] & 3, flags = data[1];
    const int64_t ctx = 1 + data[2] % 80;
    const uint8_t *rest = data + 2;
    size_t n = size - 2;
    if (mode == 0 || mode == 3) {
        if (mode == 3) rest++, n--;
        char *text = (char *)fuzz_dup(rest, n); /* exact size: overreads are caught */
        if (mode == 0) encode(t, text, n, flags);
        else batch(t, text, n, flags, ctx);
        free(text);
    } else {
        const size_t w = mode == 1 ? 4 : 8, k = n / w;
        int64_t *ids = malloc(sizeof(int64_t) * (k ? k : 1));
        if (!ids) FUZZ_DIE("out of memory");
        for (size_t i = 0; i < k; i++) {
            if (w == 4) {
                int32_t v;
                memcpy(&v, rest + 4 * i, 4);
                ids[i] = v;
            } else {
                memcpy(&ids[i], rest + 8 * i, 8);
            }
        }
        decode(t, ids, k, (flags & 4) != 0);
        free(ids);
    }
    return 0;
}
