/* fuzz_sp_model.c -- the SentencePiece ModelProto reader (mms_sp_tokenizer_create: protobuf
 * wire format, pieces, trainer / normalizer specs, precompiled charsmaps) and the T5
 * tokenizer built on it (mms_t5_tokenizer_create), on arbitrary bytes.
 *
 * A model that loads is then used: fixed texts are normalized and encoded (ids must lie in the
 * vocabulary and decode), every id up to 512 is decoded and round-tripped through its piece;
 * a unigram model also becomes a T5 tokenizer with the usual added tokens and encodes the same
 * texts. */
#include "fuzz_util.h"
#include "sentencepiece.h"
#include "tokenizer_t5.h"

static const char *k_texts[] = {
    "a photo of a cat", "  Hello  world\n\t", "<s></s><unk><extra_id_0>x", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x98\x80",
    "\xef\xbc\xa1\xe2\x91\xa0 \xe2\x96\x81 12345", "", "\xff\xfe invalid \xc3",
};

static void use_t5(const mms_sp_tokenizer *sp) {
    const int64_t n = mms_sp_tokenizer_info(sp).vocab_size;
    mms_t5_added_token added[] = {
        {"<pad>", 5, 0, 0, 0, 0, 0, 1}, {"</s>", 4, 1, 0, 0, 0, 0, 1}, {"<unk>", 5, 2, 0, 0, 0, 0, 1},
        {"<extra_id_0>", 12, n + 1, 1, 1, 0, 0, 1}, {"<extra_id_1>", 12, n, 1, 1, 0, 0, 1},
        {"\xef\xbc\x9cimage\xef\xbc\x9e", 11, n + 2, 0, 0, 1, 1, 0},
    };
    mms_t5_params p = mms_t5_default_params();
    p.extra_ids = 2;
    p.eos_id = n > 1 ? 1 : 0;
    p.unk_id = n > 2 ? 2 : 0;
    mms_t5_tokenizer *t = NULL;
    mms_error err;
    err.msg[0] = 0;
    mms_status st = mms_t5_tokenizer_create(sp, added, sizeof added / sizeof *added, p, &t, &err);
    FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_FORMAT || st == MMS_ERR_VALUE || st == MMS_ERR_UNSUPPORTED,
               "t5 create: %d %s", st, err.msg);
    if (st != MMS_OK) return;
    for (size_t i = 0; i < sizeof k_texts / sizeof *k_texts; i++) {
        const char *s = k_texts[i];
        int64_t *ids = NULL;
        size_t k = 0;
        st = mms_t5_tokenizer_encode(t, s, strlen(s), 1, &ids, &k, &err);
        const int utf8 = fuzz_utf8_ok((const uint8_t *)s, strlen(s));
        FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_FORMAT || (st == MMS_ERR_VALUE && !utf8), "t5 encode: %d %s", st, err.msg);
        for (size_t j = 0; st == MMS_OK && j < k; j++) FUZZ_CHECK(ids[j] >= 0 && ids[j] < n + 3, "t5 id %lld", (long long)ids[j]);
        mms_free(ids);
        char *norm = NULL;
        size_t nl = 0;
        if (mms_t5_tokenizer_normalize(t, s, strlen(s), &norm, &nl, &err) == MMS_OK)
            FUZZ_CHECK(fuzz_utf8_ok((const uint8_t *)norm, nl), "t5 normalize: invalid UTF-8");
        mms_free(norm);
    }
    mms_t5_tokenizer_free(t);
}

static void use_sp(const mms_sp_tokenizer *t) {
    mms_error err;
    const mms_sp_info info = mms_sp_tokenizer_info(t);
    const int64_t vocab = info.vocab_size;
    /* unk_id is -1 when the UNKNOWN piece is not named trainer_spec.unk_piece (as the library's) */
    FUZZ_CHECK(vocab > 0 && info.unk_id >= -1 && info.unk_id < vocab, "info: vocab %lld unk %lld", (long long)vocab,
               (long long)info.unk_id);
    for (size_t i = 0; i < sizeof k_texts / sizeof *k_texts; i++) {
        const char *s = k_texts[i];
        char *norm = NULL;
        size_t nl = 0;
        mms_status st = mms_sp_tokenizer_normalize(t, s, strlen(s), &norm, &nl, &err);
        FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_FORMAT, "normalize: %d %s", st, err.msg);
        mms_free(norm);
        int64_t *ids = NULL;
        size_t n = 0;
        st = mms_sp_tokenizer_encode(t, s, strlen(s), &ids, &n, &err);
        FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_FORMAT, "encode: %d %s", st, err.msg);
        if (st == MMS_OK) {
            for (size_t k = 0; k < n; k++) FUZZ_CHECK(ids[k] >= 0 && ids[k] < vocab, "id %lld outside the vocabulary", (long long)ids[k]);
            char *text = NULL;
            size_t len = 0;
            FUZZ_CHECK(mms_sp_tokenizer_decode(t, ids, n, &text, &len, &err) == MMS_OK, "decode of encoded ids: %s", err.msg);
            mms_free(text);
        }
        mms_free(ids);
    }
    for (int64_t id = -1; id <= vocab && id < 512; id++) {
        char *text = NULL;
        size_t len = 0;
        mms_status st = mms_sp_tokenizer_decode(t, &id, 1, &text, &len, &err);
        FUZZ_CHECK((st == MMS_OK) == (id >= 0 && id < vocab), "decode of id %lld: %d", (long long)id, st);
        mms_free(text);
        size_t pl = 0;
        const char *piece = mms_sp_tokenizer_id_to_piece(t, id, &pl);
        FUZZ_CHECK((piece != NULL) == (id >= 0 && id < vocab), "id_to_piece(%lld)", (long long)id);
        if (piece) {
            /* back to an id with this string: itself, or (unigram allows a normal piece to repeat a
             * control / byte one) the reserved piece, which the library's PieceToId looks up first */
            int64_t back = mms_sp_tokenizer_piece_to_id(t, piece, pl);
            size_t bl = 0;
            const char *again = back >= 0 ? mms_sp_tokenizer_id_to_piece(t, back, &bl) : NULL;
            FUZZ_CHECK(again && bl == pl && memcmp(again, piece, pl) == 0, "piece round trip of id %lld", (long long)id);
        }
        (void)mms_sp_tokenizer_piece_type(t, id);
        (void)mms_sp_tokenizer_piece_score(t, id);
    }
    if (info.model_type == MMS_SP_MODEL_TYPE_UNIGRAM) use_t5(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *model = fuzz_dup(data, size); /* exact size: overreads are caught */
    mms_sp_tokenizer *t = NULL;
    mms_error err;
    err.msg[0] = 0;
    mms_status st = mms_sp_tokenizer_create(model, size, "fuzz.model", &t, &err);
    FUZZ_LOG("create: %d %s", st, st ? err.msg : "");
    FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_FORMAT || st == MMS_ERR_UNSUPPORTED, "create: %d %s", st, err.msg);
    FUZZ_CHECK(st == MMS_OK || err.msg[0], "create failed without a message");
    if (st == MMS_OK) use_sp(t);
    mms_sp_tokenizer_free(t);
    free(model);
    return 0;
}
