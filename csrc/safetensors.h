/* safetensors.h -- memory-mapped, fully validated safetensors checkpoints.
 *
 * A checkpoint is one `*.safetensors` file or a directory holding `model.safetensors`
 * or a sharded `model.safetensors.index.json` (weight_map: tensor name -> shard file).
 * Every file is mmap'ed read-only and its header validated before any tensor is exposed:
 * header length within the file, JSON syntax, known dtype tags, non-negative shapes,
 * shape x dtype size == byte span, offsets inside the data section, no overlapping spans,
 * no duplicate names. Tensors are views that BORROW the mapping: mms_weights_get() hands
 * out a tensor holding a reference to the mapping's storage, so the bytes stay valid even
 * after mms_weights_close(). Thread safety: a mms_weights is read-only after open and may
 * be queried from any thread. */
#ifndef MMS_SAFETENSORS_H
#define MMS_SAFETENSORS_H

#include "mms_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mms_weights mms_weights;

/* Open `path`: a .safetensors file, a directory (model.safetensors.index.json preferred,
 * else model.safetensors, else the only *.safetensors file), or an index .json file.
 * `filename` (may be NULL) overrides the file name looked for inside a directory
 * (e.g. "open_clip_model.safetensors"). On success *out owns the mappings. */
mms_status mms_weights_open(const char *path, const char *filename, mms_weights **out, mms_error *err);

/* Flags of mms_weights_open_ex. MMS_WEIGHTS_IN_MEMORY: read the files into anonymous memory
 * backed by transparent huge pages instead of mapping them (a load-time copy, same RSS once
 * loaded; token-by-token decoding measured 1-9 % faster, depending on how many huge pages the
 * kernel can give; the file may then change or vanish without affecting the model). */
#define MMS_WEIGHTS_IN_MEMORY 1
mms_status mms_weights_open_ex(const char *path, const char *filename, int flags, mms_weights **out, mms_error *err);
/* Drop the checkpoint's own references; mappings live on while tensors reference them. */
void mms_weights_close(mms_weights *w);

int mms_weights_count(const mms_weights *w);
const char *mms_weights_name(const mms_weights *w, int i);   /* sorted by name */
/* The file holding tensor i (for error messages). */
const char *mms_weights_file_of(const mms_weights *w, int i);

/* The name tensor `name` is stored under (after renames; valid while w is open), or NULL. */
const char *mms_weights_stored_name(const mms_weights *w, const char *name);

/* Borrowed view of tensor `name` (no reference taken; valid while w is open), or NULL. */
const mms_tensor *mms_weights_find(const mms_weights *w, const char *name);

/* Tensor `name` with one reference on its mapping (release with mms_tensor_release).
 * MMS_ERR_NOT_FOUND names the tensor and checkpoint; MMS_ERR_UNSUPPORTED for dtypes
 * that are valid safetensors tags but not computable here (F64, I8, ...). */
mms_status mms_weights_get(const mms_weights *w, const char *name, mms_tensor *out, mms_error *err);

/* Name rewriting for composite checkpoints (a VLM's language model under "language_model."):
 * pairs = {from0, to0, from1, to1, ...}; afterwards a lookup of a name starting with from_i
 * uses to_i + rest (first match wins; other names unchanged). n = 0 clears. Prefixes < 64 bytes.
 * Not thread safe: set it while loading, before the weights are shared. */
#define MMS_WEIGHTS_MAX_RENAMES 4
mms_status mms_weights_set_renames(mms_weights *w, const char *const *pairs, int n, mms_error *err);
/* Add the checkpoint's mapped files to `set` (see mapping.h): a model component keeps them to
 * check, around each compute call, that its files did not change under the mapping. */
struct mms_mapset;
mms_status mms_weights_mapset(const mms_weights *w, struct mms_mapset *set, mms_error *err);
/* Total bytes of tensor data mapped. */
int64_t mms_weights_bytes(const mms_weights *w);

#ifdef __cplusplus
}
#endif
#endif
