/* fuzz_config.c -- model config.json parsing: mms_json_parse and the typed lookups
 * (csrc/config.h), the CLIP / SigLIP / OpenCLIP / vision-tower resolvers (clip_config.c), the
 * decoder (Llama, Mistral, Qwen2, OPT, T5) and Q-Former resolvers, and the LLaVA / BLIP-2 /
 * CLIP loaders up to the point where they look for weights.
 *
 * Every input runs through every parser (they are cheap). The loaders take a directory, so
 * the input is also written as config.json (and then open_clip_config.json) to a private
 * temporary directory holding no weights: they parse the config, then fail cleanly on the
 * missing checkpoint. */
#include "backend.h"
#include "blip2.h"
#include "clip_internal.h"
#include "decoder.h"
#include "fuzz_util.h"
#include "llava.h"
#include "qformer.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    fuzz_dir_create("cfg");
    return 0;
}

/* A failing call must leave a message; a succeeding one none of our business. */
static void expect(mms_status st, const mms_error *err, const char *what) {
    FUZZ_LOG("  %s: %d %s", what, st, st ? err->msg : "");
    FUZZ_CHECK(st == MMS_OK || (err->code == st && err->msg[0]), "%s returned %d without a message", what, st);
    FUZZ_CHECK(st != MMS_ERR_INTERNAL && st != MMS_ERR_NOMEM, "%s: %d %s", what, st, err->msg);
}

static void parsers(const mms_json *j) {
    mms_error err;
    mms_clip_config cc;
    mms_decoder_config dc;
    mms_qformer_config qc;
    const cJSON *root = j->root;
    err.msg[0] = 0;
    expect(mms_clip_config_from_hf(j, &cc, &err), &err, "clip_config_from_hf");
    err.msg[0] = 0;
    expect(mms_clip_config_from_openclip(j, &cc, &err), &err, "clip_config_from_openclip");
    const char *towers[] = {"vision_config", "text_config"};
    for (int i = 0; i < 2; i++) {
        err.msg[0] = 0;
        expect(mms_clip_vision_config(j, mms_json_obj(root, towers[i]), towers[i], &cc, &err), &err, "clip_vision_config");
    }
    err.msg[0] = 0;
    expect(mms_decoder_config_parse(j, root, NULL, &dc, &err), &err, "decoder_config_parse(root)");
    err.msg[0] = 0;
    expect(mms_decoder_config_parse(j, mms_json_obj(root, "text_config"), "text_config", &dc, &err), &err,
           "decoder_config_parse(text_config)");
    int64_t nq = 32;
    if (mms_json_int(j, root, NULL, "num_query_tokens", 32, &nq, &err) == MMS_OK) {
        err.msg[0] = 0;
        expect(mms_qformer_config_parse(j, mms_json_obj(root, "qformer_config"), "qformer_config", nq, &qc, &err), &err,
               "qformer_config_parse");
    }
    /* the typed lookups on every key of the root, whatever its type */
    for (const cJSON *it = root->child; it; it = it->next) {
        int64_t i64;
        double d;
        const char *s;
        int b;
        if (!it->string) continue;
        mms_json_int(j, root, "root", it->string, 0, &i64, &err);
        mms_json_int_req(j, root, "root", it->string, &i64, &err);
        mms_json_float(j, root, "root", it->string, 0, &d, &err);
        mms_json_str(j, root, "root", it->string, NULL, &s, &err);
        mms_json_bool(j, root, "root", it->string, 0, &b, &err);
    }
}

static void loaders(void) {
    mms_error err;
    mms_llava *lv = NULL;
    mms_blip2 *b2 = NULL;
    mms_clip *cl = NULL;
    mms_backend *be = mms_backend_cpu();
    /* each must fail: there are no weights (a config error or "no safetensors") */
    err.msg[0] = 0;
    mms_status st = mms_llava_load_ex(fuzz_dir, MMS_DTYPE_F32, be, 0, &lv, &err);
    FUZZ_CHECK(st != MMS_OK && !lv, "llava loaded without weights");
    expect(st, &err, "llava_load");
    err.msg[0] = 0;
    st = mms_blip2_load_ex(fuzz_dir, MMS_DTYPE_F32, be, 0, &b2, &err);
    FUZZ_CHECK(st != MMS_OK && !b2, "blip2 loaded without weights");
    expect(st, &err, "blip2_load");
    err.msg[0] = 0;
    st = mms_clip_load(fuzz_dir, MMS_DTYPE_F32, be, &cl, &err);
    FUZZ_CHECK(st != MMS_OK && !cl, "clip loaded without weights");
    expect(st, &err, "clip_load");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = (char *)fuzz_dup(data, size); /* exact size, no NUL */
    mms_json j;
    mms_error err;
    err.msg[0] = 0;
    mms_status st = mms_json_parse(text, size, "config.json", &j, &err);
    FUZZ_LOG("parse: %d %s", st, st ? err.msg : "");
    FUZZ_CHECK(st == MMS_OK || st == MMS_ERR_FORMAT, "mms_json_parse: %d %s", st, err.msg);
    if (st == MMS_OK) {
        parsers(&j);
        mms_json_free(&j);
        /* the loaders only get inputs that parse: others stop in mms_json_load */
        fuzz_dir_write("config.json", data, size);
        loaders();
        fuzz_dir_remove("config.json");
        fuzz_dir_write("open_clip_config.json", data, size);
        mms_clip *cl = NULL;
        err.msg[0] = 0;
        st = mms_clip_load(fuzz_dir, MMS_DTYPE_F32, mms_backend_cpu(), &cl, &err);
        FUZZ_CHECK(st != MMS_OK && !cl, "openclip loaded without weights");
        expect(st, &err, "clip_load(openclip)");
        fuzz_dir_remove("open_clip_config.json");
    }
    free(text);
    return 0;
}
