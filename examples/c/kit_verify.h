/* Checking a bundle's files against the SHA-256 digests bundle.txt records
 * (`sha256.<file>=<64 lowercase hex digits>` lines), as the Python runtime checks them
 * against bundle.json's before it reads any. kit_bundle_open calls it. */
#ifndef KIT_VERIFY_H_
#define KIT_VERIFY_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One key=value line of bundle.txt. */
typedef struct {
  const char* key;
  const char* value;
} kit_bundle_entry;

/* Checks bundle.txt's `count` entries against the files of `directory`: every
 * `sha256.<file>` line names a plain file name and holds 64 lowercase hex digits, there
 * is one for each file the other lines name (model_file, <side>_vocabulary,
 * <side>_tokenizer_model), and each such file's SHA-256 is the one recorded. Returns 0,
 * or -1 with one line in `error`. */
int kit_verify_bundle_files(const char* directory, const kit_bundle_entry* entries,
                            int count, char* error, size_t error_size);

#ifdef __cplusplus
}
#endif

#endif /* KIT_VERIFY_H_ */
