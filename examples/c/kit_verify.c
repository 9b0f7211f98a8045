/* Checking a bundle's files against bundle.txt's SHA-256 lines. See kit_verify.h. */
#define _POSIX_C_SOURCE 200809L /* stat */

#include "kit_verify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kit_sha256.h"

#define PREFIX "sha256."

/* The keys of bundle.txt whose value is a file of the bundle that a decode loop reads:
 * each must have its SHA-256 recorded (export records the model's, the tokenizers' and
 * the vocabulary files'). */
static const char* const kFileKeys[] = {"model_file", "source_vocabulary",
                                        "target_vocabulary", "source_tokenizer_model",
                                        "target_tokenizer_model"};

static void say(char* error, size_t size, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(error, size, format, args);
  va_end(args);
}

/* A file's name in the bundle directory, not a path: no '/' or '\', not "." or "..". */
static int plain_name(const char* name) {
  return *name != '\0' && strchr(name, '/') == NULL && strchr(name, '\\') == NULL &&
         strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static int is_digest(const char* text) {
  size_t length = 0;
  for (; text[length] != '\0'; ++length) {
    char c = text[length];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return 0;
  }
  return length == KIT_SHA256_HEX_SIZE - 1;
}

/* The file name of a `sha256.<file>` key, or NULL for another key. */
static const char* digest_of(const char* key) {
  return strncmp(key, PREFIX, strlen(PREFIX)) == 0 ? key + strlen(PREFIX) : NULL;
}

static const char* lookup(const kit_bundle_entry* entries, int count, const char* key) {
  for (int i = 0; i < count; ++i) {
    if (strcmp(entries[i].key, key) == 0) return entries[i].value;
  }
  return NULL;
}

/* `directory`/`name`'s SHA-256 against `recorded`. */
static int check_file(const char* directory, const char* name, const char* recorded,
                      char* error, size_t error_size) {
  size_t size = strlen(directory) + strlen(name) + 2;
  char* path = malloc(size);
  if (path == NULL) {
    say(error, error_size, "out of memory");
    return -1;
  }
  snprintf(path, size, "%s/%s", directory, name);
  int status = -1;
  struct stat found;
  char hex[KIT_SHA256_HEX_SIZE];
  if (stat(path, &found) != 0) {
    if (errno == ENOENT) {
      say(error, error_size, "%s has no %s, whose SHA-256 bundle.txt records: export the "
          "bundle again or copy it whole", directory, name);
    } else {
      say(error, error_size, "cannot read %s: %s", path, strerror(errno));
    }
  } else if (!S_ISREG(found.st_mode)) {
    say(error, error_size, "%s is not a regular file", path);
  } else if (kit_sha256_file(path, hex, error, error_size) == 0) {
    if (strcmp(hex, recorded) == 0) {
      status = 0;
    } else {
      say(error, error_size, "%s is not the file bundle.txt records (SHA-256 %.16s..., "
          "recorded %.16s...): it was changed, damaged or copied from another bundle; "
          "export the bundle again or copy it whole", path, hex, recorded);
    }
  }
  free(path);
  return status;
}

int kit_verify_bundle_files(const char* directory, const kit_bundle_entry* entries,
                            int count, char* error, size_t error_size) {
  /* What bundle.txt says first, so that a damaged line is named before any file is
   * read; then the files, each read whole. */
  for (int i = 0; i < count; ++i) {
    const char* name = digest_of(entries[i].key);
    if (name == NULL) continue;
    if (!plain_name(name)) {
      say(error, error_size, "%s/bundle.txt: %s must name a file in the bundle directory",
          directory, entries[i].key);
      return -1;
    }
    if (!is_digest(entries[i].value)) {
      say(error, error_size, "%s/bundle.txt: %s must be a SHA-256, 64 lowercase hex "
          "digits. Received: %s", directory, entries[i].key, entries[i].value);
      return -1;
    }
  }
  for (size_t k = 0; k < sizeof(kFileKeys) / sizeof(kFileKeys[0]); ++k) {
    const char* name = lookup(entries, count, kFileKeys[k]);
    if (name == NULL || !plain_name(name)) continue; /* kit_bundle_open says why */
    int recorded = 0;
    for (int i = 0; i < count && !recorded; ++i) {
      const char* hashed = digest_of(entries[i].key);
      recorded = hashed != NULL && strcmp(hashed, name) == 0;
    }
    if (!recorded) {
      say(error, error_size, "%s/bundle.txt has no %s%s (the SHA-256 of its %s): not a "
          "complete bundle.txt, export the bundle again", directory, PREFIX, name,
          kFileKeys[k]);
      return -1;
    }
  }
  for (int i = 0; i < count; ++i) {
    const char* name = digest_of(entries[i].key);
    if (name != NULL &&
        check_file(directory, name, entries[i].value, error, error_size) != 0) {
      return -1;
    }
  }
  return 0;
}
