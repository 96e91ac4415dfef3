/* fuzz_tokenizer_json.c -- the tokenizer loaders on arbitrary files: HF tokenizer.json
 * (mms_hf_tokenizer_create_json, with and without tokenizer_config-style options), the GPT-2
 * vocab.json + merges.txt pair (mms_hf_tokenizer_create_gpt2), CLIP's vocab.json + merges.txt
 * (mms_bpe_tokenizer_create_hf) and OpenAI merges text (mms_bpe_tokenizer_create_openai).
 *
 * Input: byte 0 picks the loader (bits 0-1) and options (bit 2); for the two-file loaders
 * bytes 1-2 (little endian, modulo the rest) give the length of the vocabulary JSON, the rest
 * is the merges text. A tokenizer that loads is then used: a few fixed texts (ASCII, specials,
 * multi-byte, byte fallback) are encoded, and every id up to 512 decoded alone and together. */
#include "fuzz_util.h"
#include "tokenizer.h"
#include "tokenizer_hf.h"

static const char *k_texts[] = {
    "a photo of a cat", " Hello  world\n\t", "<|endoftext|>x<s></s><unk>", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
    "\xe2\x96\x81\xe2\x96\x81 12345 don't", "",
};

static void use_hf(const mms_hf_tokenizer *t) {
    mms_error err;
    const int64_t vocab = mms_hf_tokenizer_vocab_size(t);
    for (size_t i = 0; i < sizeof k_texts / sizeof *k_texts; i++)
        for (int flags = 0; flags < 4; flags++) {
            int64_t *ids = NULL;
            size_t n = 0;
            mms_status st = mms_hf_tokenizer_encode(t, k_texts[i], strlen(k_texts[i]), flags, &ids, &n, &err);
            FUZZ_CHECK(st == MMS_OK, "encode of UTF-8 text failed: %d %s", st, err.msg);
            /* the post-processor's ids come from the file as they are (as in HF): they need not
             * name a token, so only the ids between them are checked */
            size_t np = 0, ns = 0;
            const int64_t *pre, *post;
            if (flags & MMS_HF_ADD_SPECIAL) mms_hf_tokenizer_template(t, &pre, &np, &post, &ns);
            FUZZ_CHECK(np + ns <= n, "fewer ids than the template");
            for (size_t k = np; k < n - ns; k++)
                FUZZ_CHECK(ids[k] >= 0 && ids[k] < vocab, "id %lld >= vocab %lld", (long long)ids[k], (long long)vocab);
            char *text = NULL;
            size_t len = 0;
            st = mms_hf_tokenizer_decode(t, ids + np, n - np - ns, flags & 1, &text, &len, &err);
            FUZZ_CHECK(st == MMS_OK, "the ids of an encode do not decode: %s", err.msg);
            FUZZ_CHECK(fuzz_utf8_ok((const uint8_t *)text, len), "decode produced invalid UTF-8");
            mms_free(text);
            mms_free(ids);
        }
    int64_t all[512];
    size_t n = 0;
    for (int64_t id = -1; id < 512 && id <= vocab; id++) {
        char *text = NULL;
        size_t len = 0;
        mms_status st = mms_hf_tokenizer_decode(t, &id, 1, 0, &text, &len, &err);
        if (st == MMS_OK) {
            FUZZ_CHECK(fuzz_utf8_ok((const uint8_t *)text, len), "decode of id %lld: invalid UTF-8", (long long)id);
            all[n++] = id;
        } else {
            FUZZ_CHECK(st == MMS_ERR_VALUE && mms_hf_tokenizer_id_to_token(t, id, NULL) == NULL,
                       "decode of id %lld: %d %s", (long long)id, st, err.msg);
        }
        mms_free(text);
        size_t tl = 0;
        const char *tok = mms_hf_tokenizer_id_to_token(t, id, &tl);
        if (tok) (void)mms_hf_tokenizer_token_to_id(t, tok, tl);
        (void)mms_hf_tokenizer_is_special(t, id);
    }
    char *text = NULL;
    size_t len = 0;
    FUZZ_CHECK(mms_hf_tokenizer_decode(t, all, n, 1, &text, &len, &err) == MMS_OK, "decode of all ids: %s", err.msg);
    mms_free(text);
    for (size_t i = 0; i < mms_hf_tokenizer_n_added(t); i++) (void)mms_hf_tokenizer_added(t, i);
    for (size_t i = 0; mms_hf_tokenizer_decoder(t, i); i++) {}
}

static void use_clip(const mms_bpe_tokenizer *t) {
    mms_error err;
    const int64_t vocab = mms_bpe_tokenizer_vocab_size(t);
    for (size_t i = 0; i < sizeof k_texts / sizeof *k_texts; i++) {
        int64_t *ids = NULL;
        size_t n = 0;
        mms_status st = mms_bpe_tokenizer_encode(t, k_texts[i], strlen(k_texts[i]), &ids, &n, &err);
        FUZZ_CHECK(st == MMS_OK, "encode of UTF-8 text failed: %s", err.msg);
        for (size_t k = 0; k < n; k++) FUZZ_CHECK(ids[k] >= 0 && ids[k] < vocab, "id out of the vocabulary");
        char *text = NULL;
        size_t len = 0;
        FUZZ_CHECK(mms_bpe_tokenizer_decode(t, ids, n, 1, &text, &len, &err) == MMS_OK, "decode: %s", err.msg);
        FUZZ_CHECK(fuzz_utf8_ok((const uint8_t *)text, len), "decode produced invalid UTF-8");
        mms_free(text);
        mms_free(ids);
    }
    for (int64_t id = -1; id < 600 && id <= vocab; id++) {
        char *text = NULL;
        size_t len = 0;
        if (mms_bpe_tokenizer_decode(t, &id, 1, 0, &text, &len, &err) == MMS_OK)
            FUZZ_CHECK(fuzz_utf8_ok((const uint8_t *)text, len), "decode of id %lld: invalid UTF-8", (long long)id);
        mms_free(text);
        const char *s = mms_bpe_tokenizer_id_to_token(t, id);
        if (s) (void)mms_bpe_tokenizer_token_to_id(t, s, strlen(s));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    const int which = data[0] & 3, with_opts = (data[0] & 4) != 0;
    mms_error err;
    err.msg[0] = 0;
    mms_status st;
    /* what a tokenizer_config.json typically adds */
    static const char *const specials[] = {"<s>", "</s>", "<pad>", "<|endoftext|>"};
    mms_hf_options opts = mms_hf_default_options();
    opts.special_tokens = specials;
    opts.n_special_tokens = 4;
    opts.override_post_processor = 1;
    opts.add_bos = 1;
    opts.bos_token = "<s>";
    opts.eos_token = "</s>";
    opts.add_prefix_space = 1;
    if (which == 0 || which == 3) {
        char *json = (char *)fuzz_dup(data + 1, size - 1); /* exact size: overreads are caught */
        if (which == 0) {
            mms_hf_tokenizer *t = NULL;
            st = mms_hf_tokenizer_create_json(json, size - 1, "tokenizer.json", with_opts ? &opts : NULL, &t, &err);
            if (st == MMS_OK) use_hf(t);
            mms_hf_tokenizer_free(t);
        } else {
            mms_bpe_tokenizer *t = NULL;
            st = mms_bpe_tokenizer_create_openai(json, size - 1, with_opts ? -1 : 3, &t, &err);
            if (st == MMS_OK) use_clip(t);
            mms_bpe_tokenizer_free(t);
        }
        free(json);
    } else {
        size_t rest = size - 3, vlen = ((size_t)data[1] | (size_t)data[2] << 8) % (rest + 1);
        char *vocab = (char *)fuzz_dup(data + 3, vlen), *merges = (char *)fuzz_dup(data + 3 + vlen, rest - vlen);
        if (which == 1) {
            mms_hf_tokenizer *t = NULL;
            st = mms_hf_tokenizer_create_gpt2(vocab, vlen, merges, rest - vlen, "gpt2", with_opts ? &opts : NULL, &t, &err);
            if (st == MMS_OK) use_hf(t);
            mms_hf_tokenizer_free(t);
        } else {
            mms_bpe_tokenizer *t = NULL;
            st = mms_bpe_tokenizer_create_hf(vocab, vlen, merges, rest - vlen, &t, &err);
            if (st == MMS_OK) use_clip(t);
            mms_bpe_tokenizer_free(t);
        }
        free(vocab);
        free(merges);
    }
    FUZZ_LOG("loader %d: %d %s", which, st, st ? err.msg : "");
    FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_FORMAT || st == MMS_ERR_UNSUPPORTED || st == MMS_ERR_VALUE,
               "loader: %d %s", st, err.msg);
    FUZZ_CHECK(st == MMS_OK || err.msg[0], "loader failed without a message");
    return 0;
}
