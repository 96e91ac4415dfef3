/* mapping.h -- checkpoint files mapped into memory: shared between loads, guarded against
 * files that change under the mapping.
 *
 * Sharing: mapping a file that is already mapped (same device + inode, size and mtime, same
 * mode) returns the live mapping with one more reference, so loading a checkpoint twice costs
 * no second mapping (mms_mappings_list shows the users).
 *
 * Files that change under us: the file descriptor stays open for the mapping's life, so a
 * file replaced by rename keeps the old inode and the model keeps working. A file truncated
 * in place would make reads of the lost pages raise SIGBUS; a process-wide SIGBUS handler
 * catches faults inside registered mappings, maps zero pages over the lost range (the read
 * completes with zeros) and marks the mapping poisoned; faults elsewhere go to the previous
 * handler. Every model component holds the mapset of the files it was loaded from and calls
 * mms_mapset_check before and after compute: a file that shrank or was modified since it was
 * mapped, or a poisoned mapping, is an MMS_ERR_IO naming the file, so the call fails instead
 * of returning numbers computed from changed weights. Copies read into memory at load
 * (MMS_MAP_IN_MEMORY) do not depend on the file and are never flagged. */
#ifndef MMS_MAPPING_H
#define MMS_MAPPING_H

#include "mms_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read the file into anonymous memory backed by transparent huge pages instead of mapping it
 * (a load-time copy; see MMS_WEIGHTS_IN_MEMORY). */
#define MMS_MAP_IN_MEMORY 1

/* Map `path` read-only (or share its live mapping). *out holds one reference. */
mms_status mms_map_file(const char *path, int flags, mms_storage **out, mms_error *err);

/* The path a mapping was opened with (NULL for other storages). */
const char *mms_map_path(const mms_storage *s);

/* A component's set of mapped files (one reference each). Zero-initialise before use. */
typedef struct mms_mapset {
    mms_storage **maps;
    int n;
} mms_mapset;
mms_status mms_mapset_add(mms_mapset *set, mms_storage *s, mms_error *err); /* takes a new ref */
mms_status mms_mapset_copy(mms_mapset *dst, const mms_mapset *src, mms_error *err);
void mms_mapset_release(mms_mapset *set);
/* MMS_OK, or MMS_ERR_IO naming the first file that shrank, was modified since it was mapped,
 * or lost pages under a read (poisoned). Cheap: one fstat per file. NULL set: MMS_OK. */
mms_status mms_mapset_check(const mms_mapset *set, mms_error *err);

/* Live mappings, for diagnostics: fills up to `max` entries, returns the total count. */
typedef struct mms_mapping_info {
    char path[1024]; /* truncated copy */
    size_t size;
    int refs;       /* references: tensors, mapsets and weights handles holding the mapping */
    int in_memory;  /* a load-time copy (MMS_MAP_IN_MEMORY) */
    int poisoned;   /* lost pages under a read (SIGBUS caught) */
} mms_mapping_info;
int mms_mappings_list(mms_mapping_info *out, int max);

#ifdef __cplusplus
}
#endif
#endif
