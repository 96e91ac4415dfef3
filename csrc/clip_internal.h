/* clip_internal.h -- shared between clip.c and clip_config.c (not public). */
#ifndef MMS_CLIP_INTERNAL_H
#define MMS_CLIP_INTERNAL_H

#include "clip.h"
#include "config.h"
#include "mapping.h"

struct mms_clip {
    mms_clip_config cfg;
    mms_backend *be;
    mms_dtype dtype;
    int64_t weight_bytes;
    /* vision tower */
    mms_linear patch;                    /* (D, C*p*p), bias for SigLIP            */
    mms_tensor class_emb;                /* (D)                                      */
    mms_tensor vpos;                     /* (T, D)                                   */
    mms_tensor pre_g, pre_b, post_g, post_b;
    mms_block_weights *vblocks;
    mms_linear vproj;                    /* (P, D) no bias (CLIP / OpenCLIP)         */
    /* SigLIP attention-pooling head */
    mms_tensor probe;                    /* (D)                                      */
    mms_linear head_q, head_kv, head_out, head_fc1, head_fc2;
    mms_tensor head_ln_g, head_ln_b;
    /* text tower */
    mms_tensor tok_emb;                  /* (V, D) as stored (F32/F16/BF16)          */
    mms_tensor tpos;                     /* (ctx, D) F32                              */
    mms_tensor final_g, final_b;
    mms_block_weights *tblocks;
    mms_linear tproj;                    /* (P, D); SigLIP head has a bias          */
    float logit_scale, logit_bias;
    mms_mapset maps;                     /* files the weights came from (checked per call) */
};

/* Append a new host output tensor `name`; *data receives its buffer. */
mms_status mms_outputs_add(mms_outputs *o, const char *name, mms_dtype dt, int ndim, const int64_t *ne, void **data,
                           mms_error *err);

mms_status mms_clip_config_from_hf(const mms_json *j, mms_clip_config *c, mms_error *err);
mms_status mms_clip_vision_config(const mms_json *j, const cJSON *vc, const char *what, mms_clip_config *c,
                                  mms_error *err);
mms_status mms_clip_config_from_openclip(const mms_json *j, mms_clip_config *c, mms_error *err);

#endif
