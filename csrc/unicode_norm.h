/* unicode_norm.h -- text transforms of the HF tokenizer.json normalizers (tokenizer_hf*.c):
 * canonical decomposition / composition (NFD, NFC) and per-character lowercasing, with the
 * Unicode data HF tokenizers itself uses (unicode_norm_tables.h), plus the growable byte
 * buffer they write to. Internal; not part of the C API. */
#ifndef MMS_UNICODE_NORM_H
#define MMS_UNICODE_NORM_H

#include <stddef.h>
#include <stdint.h>

#include "mms_common.h"

/* A growable byte buffer: p[0..n) used, cap allocated (mms_malloc). Zero-initialise it;
 * mms_buf_free releases it. */
typedef struct mms_buf {
    char *p;
    size_t n, cap;
} mms_buf;

/* Room for `extra` more bytes; 0, or -1 when out of memory (the buffer is unchanged). */
int mms_buf_reserve(mms_buf *b, size_t extra);
/* Append s[0..n); 0 or -1 (out of memory). */
int mms_buf_put(mms_buf *b, const void *s, size_t n);
void mms_buf_free(mms_buf *b);

/* UTF-8 of code point cp (<= 0x10FFFF) to out (4 bytes of room); returns its length. */
size_t mms_utf8_encode(uint32_t cp, char *out);

/* Append NFD (compose = 0) or NFC (compose = 1) of the valid UTF-8 s[0..n) to out.
 * 0, or -1 when out of memory. */
int mms_unicode_nf_append(mms_buf *out, const char *s, size_t n, int compose);

/* Append s[0..n) (valid UTF-8) with every character lowercased on its own (Rust's
 * char::to_lowercase: no final-sigma rule; U+0130 becomes two characters). 0 or -1. */
int mms_unicode_lower_append(mms_buf *out, const char *s, size_t n);

/* Is cp a word character as Rust regex's \w sees it (letters, marks, Nd, Nl, Pc, Join_Control,
 * alphabetic symbols)? HF's single_word boundary test. */
int mms_unicode_is_word(uint32_t cp);
/* Does the UTF-8 text s[0..n) end / start with a word character (mms_unicode_is_word)? 0 if empty
 * or not valid UTF-8 there. */
int mms_utf8_ends_with_word(const char *s, size_t n);
int mms_utf8_starts_with_word(const char *s, size_t n);

#endif
