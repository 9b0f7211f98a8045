/* SHA-256 (FIPS 180-4), incremental, and of a file by path. Plain C11 and the C library
 * only: what checks a bundle's files against the digests bundle.txt records. */
#ifndef KIT_SHA256_H_
#define KIT_SHA256_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KIT_SHA256_SIZE 32     /* bytes of a digest */
#define KIT_SHA256_HEX_SIZE 65 /* its 64 lowercase hex digits and a NUL */

typedef struct {
  uint32_t state[8];
  uint64_t length;          /* bytes hashed so far (a message is < 2^64 bits) */
  unsigned char block[64];  /* the bytes of the block not yet complete */
  size_t used;              /* how many of them there are, 0 to 63 */
} kit_sha256;

void kit_sha256_init(kit_sha256* context);
void kit_sha256_update(kit_sha256* context, const void* data, size_t size);
/* Pads, writes the digest, and leaves `context` to be initialized again. */
void kit_sha256_final(kit_sha256* context, unsigned char digest[KIT_SHA256_SIZE]);

/* `digest` as 64 lowercase hex digits, NUL-terminated. */
void kit_sha256_hex(const unsigned char digest[KIT_SHA256_SIZE],
                    char hex[KIT_SHA256_HEX_SIZE]);

/* The SHA-256 of the file at `path` as 64 lowercase hex digits, read in 64 KiB chunks.
 * Returns 0, or -1 with one line in `error` ("cannot read PATH: " and errno's message)
 * and errno as the failure left it. */
int kit_sha256_file(const char* path, char hex[KIT_SHA256_HEX_SIZE], char* error,
                    size_t error_size);

#ifdef __cplusplus
}
#endif

#endif /* KIT_SHA256_H_ */
