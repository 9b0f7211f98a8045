/* kit_sha256sum: the SHA-256 of each file named, one line each as sha256sum writes it
 * ("DIGEST  NAME"), from kit_sha256.c; tests/device/test_c_sha256.py compares it with
 * Python's hashlib.
 *
 *   kit_sha256sum [--pieces] FILE...
 *
 *   --pieces   reads each file whole and gives it to kit_sha256_update in pieces of 1,
 *              2, ..., 130 bytes, over and over, instead of kit_sha256_file's 64 KiB
 *              chunks: the same digest, through every way a piece meets a block.
 *
 * Exit status 2: bad usage; 1: a file could not be read (the others are still hashed).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kit_sha256.h"

/* kit_sha256_file's work through the incremental API in pieces of every size. */
static int hash_in_pieces(const char* path, char hex[KIT_SHA256_HEX_SIZE], char* error,
                          size_t error_size) {
  errno = 0;
  FILE* file = fopen(path, "rb");
  unsigned char* content = NULL;
  size_t length = 0, capacity = 0, got = 1;
  while (file != NULL && got > 0) {
    if (length == capacity) {
      capacity = capacity ? 2 * capacity : 4096;
      unsigned char* grown = realloc(content, capacity);
      if (grown == NULL) break;
      content = grown;
    }
    got = fread(content + length, 1, capacity - length, file);
    length += got;
  }
  int failed = file == NULL || got > 0 || ferror(file), failure = errno;
  if (file != NULL) fclose(file);
  if (failed) {
    snprintf(error, error_size, "cannot read %s: %s", path,
             failure ? strerror(failure) : "out of memory");
    free(content);
    return -1;
  }
  kit_sha256 context;
  kit_sha256_init(&context);
  size_t piece = 1;
  for (size_t at = 0; at < length; at += piece, piece = piece % 130 + 1) {
    if (piece > length - at) piece = length - at;
    kit_sha256_update(&context, content + at, piece);
  }
  unsigned char digest[KIT_SHA256_SIZE];
  kit_sha256_final(&context, digest);
  kit_sha256_hex(digest, hex);
  free(content);
  return 0;
}

int main(int argc, char** argv) {
  int pieces = argc > 1 && strcmp(argv[1], "--pieces") == 0;
  if (argc < 2 + pieces) {
    fprintf(stderr, "usage: kit_sha256sum [--pieces] FILE...\n");
    return 2;
  }
  int status = 0;
  for (int i = 1 + pieces; i < argc; ++i) {
    char hex[KIT_SHA256_HEX_SIZE], error[1024];
    int hashed = pieces ? hash_in_pieces(argv[i], hex, error, sizeof(error))
                        : kit_sha256_file(argv[i], hex, error, sizeof(error));
    if (hashed != 0) {
      fprintf(stderr, "kit_sha256sum: error: %s\n", error);
      status = 1;
      continue;
    }
    printf("%s  %s\n", hex, argv[i]);
  }
  if (fflush(stdout) != 0) {
    fprintf(stderr, "kit_sha256sum: error: cannot write the output\n");
    status = 1;
  }
  return status;
}
