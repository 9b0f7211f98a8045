/* Reading a kit bundle's bundle.txt and vocabulary files, and the char and word
 * tokenizers over them; a SentencePiece side goes to kit_sentencepiece.h where the
 * program is built with it (KIT_WITH_SENTENCEPIECE). See kit_bundle.h. */
#define _POSIX_C_SOURCE 200809L /* stat */

#include "kit_bundle.h"
#include "kit_verify.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef KIT_WITH_SENTENCEPIECE
#include "kit_sentencepiece.h"
#endif

/* Far above anything export writes: a damaged file is refused before it is sized. */
#define MAX_METADATA_BYTES (1 << 20)
#define MAX_VOCABULARY_BYTES (64 << 20)
#define MAX_LENGTH (1 << 20)
#define MAX_VOCABULARY_SIZE (1 << 24)
#define SPECIAL_TOKENS 4 /* ids 0-3: <pad>, <unk>, <s>, </s> */

static void say(char* error, size_t size, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(error, size, format, args);
  va_end(args);
}

/* The bytes of a regular file of at most `limit` bytes, NUL-terminated (the NUL is not
 * counted in *length). NULL with a message otherwise. */
static char* read_file(const char* path, size_t limit, size_t* length, char* error,
                       size_t error_size) {
  struct stat found;
  if (stat(path, &found) != 0) {
    say(error, error_size, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  if (!S_ISREG(found.st_mode)) {
    say(error, error_size, "%s is not a regular file", path);
    return NULL;
  }
  if ((unsigned long long)found.st_size > limit) {
    say(error, error_size, "%s is larger than %zu bytes: not a file export wrote", path,
        limit);
    return NULL;
  }
  FILE* file = fopen(path, "rb");
  if (file == NULL) {
    say(error, error_size, "cannot read %s: %s", path, strerror(errno));
    return NULL;
  }
  size_t size = (size_t)found.st_size;
  char* content = malloc(size + 1);
  size_t got = content ? fread(content, 1, size, file) : 0;
  int failed = content == NULL || got != size || ferror(file);
  fclose(file);
  if (failed) {
    say(error, error_size, content ? "cannot read %s: it changed while read" :
                                     "out of memory reading %s", path);
    free(content);
    return NULL;
  }
  content[size] = '\0';
  *length = size;
  return content;
}

/* ---- bundle.txt ------------------------------------------------------------------ */

typedef kit_bundle_entry entry; /* points into the file's text, NUL-terminated there */

typedef struct {
  entry* entries;
  int count;
} metadata;

/* Splits `text` (modified in place) into key=value entries; comments start with '#'. */
static int parse_metadata(char* text, metadata* found, const char* path, char* error,
                          size_t error_size) {
  int capacity = 1;
  for (const char* c = text; *c; ++c) capacity += *c == '\n';
  found->entries = calloc((size_t)capacity, sizeof(entry));
  found->count = 0;
  if (found->entries == NULL) {
    say(error, error_size, "out of memory reading %s", path);
    return -1;
  }
  int number = 0;
  for (char* line = text; line != NULL && *line;) {
    char* end = strchr(line, '\n');
    if (end) *end = '\0';
    ++number;
    if (*line != '#' && *line != '\0') {
      char* equals = strchr(line, '=');
      if (equals == NULL || equals == line) {
        say(error, error_size, "%s: line %d is not key=value: not a file export wrote",
            path, number);
        return -1;
      }
      *equals = '\0';
      found->entries[found->count++] = (entry){line, equals + 1};
    }
    line = end ? end + 1 : NULL;
  }
  return 0;
}

static const char* lookup(const metadata* found, const char* key) {
  for (int i = 0; i < found->count; ++i) {
    if (strcmp(found->entries[i].key, key) == 0) return found->entries[i].value;
  }
  return NULL;
}

static int text_value(const metadata* found, const char* key, const char** value,
                      const char* path, char* error, size_t error_size) {
  *value = lookup(found, key);
  if (*value == NULL || **value == '\0') {
    say(error, error_size, "%s has no %s: not a complete bundle.txt", path, key);
    return -1;
  }
  return 0;
}

static int int_value(const metadata* found, const char* key, long low, long high,
                     int* value, const char* path, char* error, size_t error_size) {
  const char* text;
  if (text_value(found, key, &text, path, error, error_size) != 0) return -1;
  char* end;
  errno = 0;
  long number = strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || number < low || number > high) {
    say(error, error_size, "%s: %s must be an integer in [%ld, %ld]. Received: %s", path,
        key, low, high, text);
    return -1;
  }
  *value = (int)number;
  return 0;
}

/* `directory`/`name`, for a `name` that stays inside the directory. */
static char* inside(const char* directory, const char* name, const char* key,
                    char* error, size_t error_size) {
  if (strchr(name, '/') || strchr(name, '\\') || strcmp(name, ".") == 0 ||
      strcmp(name, "..") == 0) {
    say(error, error_size, "bundle.txt: %s must be a file name in the bundle directory. "
        "Received: %s", key, name);
    return NULL;
  }
  size_t size = strlen(directory) + strlen(name) + 2;
  char* path = malloc(size);
  if (path == NULL) {
    say(error, error_size, "out of memory");
    return NULL;
  }
  snprintf(path, size, "%s/%s", directory, name);
  return path;
}

static char* copy(const char* text) {
  size_t size = strlen(text) + 1;
  char* copied = malloc(size);
  if (copied) memcpy(copied, text, size);
  return copied;
}

/* ---- vocabulary files ------------------------------------------------------------ */

static int compare_bytes(const char* a, size_t a_length, const char* b, size_t b_length) {
  int order = memcmp(a, b, a_length < b_length ? a_length : b_length);
  if (order != 0) return order;
  return (a_length > b_length) - (a_length < b_length);
}

static int compare_tokens(const void* a, const void* b) {
  const kit_token *x = a, *y = b;
  return compare_bytes(x->text, x->length, y->text, y->length);
}

static void free_vocabulary(kit_vocabulary* vocabulary) {
#ifdef KIT_WITH_SENTENCEPIECE
  kit_sentencepiece_free(vocabulary->pieces);
#endif
  free(vocabulary->storage);
  free(vocabulary->tokens);
  free(vocabulary->by_text);
  memset(vocabulary, 0, sizeof(*vocabulary));
}

/* Reads one token a line, unescaping "\\", "\n" and "\r" in place. */
static int read_vocabulary(const char* path, int expected_size, int words,
                           kit_vocabulary* vocabulary, char* error, size_t error_size) {
  memset(vocabulary, 0, sizeof(*vocabulary));
  vocabulary->words = words;
  size_t length;
  char* text = read_file(path, MAX_VOCABULARY_BYTES, &length, error, error_size);
  if (text == NULL) return -1;
  vocabulary->storage = text;
  int lines = 0;
  for (size_t i = 0; i < length; ++i) lines += text[i] == '\n';
  if (length == 0 || text[length - 1] != '\n' || lines != expected_size) {
    say(error, error_size, "%s must hold %d tokens, one a line, each line ending in a "
        "newline: not the file export wrote", path, expected_size);
    free_vocabulary(vocabulary);
    return -1;
  }
  vocabulary->size = lines;
  vocabulary->tokens = calloc((size_t)lines, sizeof(kit_token));
  vocabulary->by_text = calloc((size_t)lines, sizeof(kit_token));
  if (!vocabulary->tokens || !vocabulary->by_text) {
    say(error, error_size, "out of memory reading %s", path);
    free_vocabulary(vocabulary);
    return -1;
  }
  char* line = text;
  for (int id = 0; id < lines; ++id) {
    char* end = memchr(line, '\n', length - (size_t)(line - text));
    long size = kit_unescape(line, (size_t)(end - line));
    if (size < 0) {
      say(error, error_size, "%s: line %d has an unknown escape: not the file export "
          "wrote", path, id + 1);
      free_vocabulary(vocabulary);
      return -1;
    }
    vocabulary->tokens[id] = (kit_token){line, (size_t)size, id};
    line = end + 1;
  }
  static const char* const specials[SPECIAL_TOKENS] = {"<pad>", "<unk>", "<s>", "</s>"};
  for (int id = 0; id < SPECIAL_TOKENS && id < lines; ++id) {
    if (compare_bytes(vocabulary->tokens[id].text, vocabulary->tokens[id].length,
                      specials[id], strlen(specials[id])) != 0) {
      say(error, error_size, "%s: line %d must be %s", path, id + 1, specials[id]);
      free_vocabulary(vocabulary);
      return -1;
    }
  }
  for (int id = SPECIAL_TOKENS; id < lines; ++id) {
    vocabulary->by_text[vocabulary->by_text_count++] = vocabulary->tokens[id];
  }
  qsort(vocabulary->by_text, (size_t)vocabulary->by_text_count, sizeof(kit_token),
        compare_tokens);
  return 0;
}

/* The id of the token whose bytes are text[0..length), or -1. */
static int token_id(const kit_vocabulary* vocabulary, const char* text, size_t length) {
  int low = 0, high = vocabulary->by_text_count - 1;
  while (low <= high) {
    int middle = low + (high - low) / 2;
    const kit_token* token = &vocabulary->by_text[middle];
    int order = compare_bytes(text, length, token->text, token->length);
    if (order == 0) return token->id;
    if (order < 0) {
      high = middle - 1;
    } else {
      low = middle + 1;
    }
  }
  return -1;
}

/* ---- the bundle ------------------------------------------------------------------ */

/* A "sentencepiece" side: the model file bundle.txt names, of `size` pieces. */
static int open_sentencepiece(const char* directory, const metadata* found,
                              const char* side, int size, kit_vocabulary* vocabulary,
                              const char* path, char* error, size_t error_size) {
  memset(vocabulary, 0, sizeof(*vocabulary));
#ifdef KIT_WITH_SENTENCEPIECE
  char key[64];
  const char* name;
  snprintf(key, sizeof(key), "%s_tokenizer_model", side);
  if (text_value(found, key, &name, path, error, error_size) != 0) return -1;
  char* file = inside(directory, name, key, error, error_size);
  if (file == NULL) return -1;
  vocabulary->pieces = kit_sentencepiece_load(file, error, error_size);
  if (vocabulary->pieces != NULL && kit_sentencepiece_size(vocabulary->pieces) != size) {
    say(error, error_size, "%s has %d pieces, and bundle.txt's %s_tokenizer_size is %d: "
        "not the model the bundle was exported with", file,
        kit_sentencepiece_size(vocabulary->pieces), side, size);
    free_vocabulary(vocabulary);
  }
  free(file);
  if (vocabulary->pieces == NULL) return -1;
  vocabulary->size = size;
  return 0;
#else
  (void)directory, (void)found, (void)size, (void)path;
  say(error, error_size, "the %s tokenizer is sentencepiece, and this kit_decode was "
      "built without the SentencePiece library: install it (Debian and Ubuntu: "
      "libsentencepiece-dev) and build again", side);
  return -1;
#endif
}

static int open_side(const char* directory, const metadata* found, const char* side,
                     kit_vocabulary* vocabulary, const char* path, char* error,
                     size_t error_size) {
  char key[64];
  const char* type;
  snprintf(key, sizeof(key), "%s_tokenizer", side);
  if (text_value(found, key, &type, path, error, error_size) != 0) return -1;
  int words = strcmp(type, "word") == 0;
  int pieces = strcmp(type, "sentencepiece") == 0;
  if (!words && !pieces && strcmp(type, "char") != 0) {
    say(error, error_size, "the %s tokenizer is %s, and this program reads the char, "
        "word and sentencepiece tokenizers only", side, type);
    return -1;
  }
  int size;
  snprintf(key, sizeof(key), "%s_tokenizer_size", side);
  if (int_value(found, key, SPECIAL_TOKENS, MAX_VOCABULARY_SIZE, &size, path, error,
                error_size) != 0) {
    return -1;
  }
  if (pieces) {
    return open_sentencepiece(directory, found, side, size, vocabulary, path, error,
                              error_size);
  }
  const char* name;
  snprintf(key, sizeof(key), "%s_vocabulary", side);
  if (text_value(found, key, &name, path, error, error_size) != 0) return -1;
  char* file = inside(directory, name, key, error, error_size);
  if (file == NULL) return -1;
  int status = read_vocabulary(file, size, words, vocabulary, error, error_size);
  free(file);
  return status;
}

int kit_bundle_open(const char* directory, kit_bundle* bundle, char* error,
                    size_t error_size) {
  memset(bundle, 0, sizeof(*bundle));
  char* path = inside(directory, "bundle.txt", "bundle.txt", error, error_size);
  if (path == NULL) return -1;
  size_t length;
  char* text = read_file(path, MAX_METADATA_BYTES, &length, error, error_size);
  metadata found = {NULL, 0};
  int status = -1, version = 0;
  const char *model = NULL, *encode = NULL, *decode_step = NULL;
  if (text == NULL) {
    struct stat found_file;
    if (stat(path, &found_file) != 0 && errno == ENOENT) {
      say(error, error_size, "%s has no bundle.txt: not a bundle directory, or one "
          "exported before format %d (export it again)", directory,
          KIT_BUNDLE_FORMAT_VERSION);
    }
    goto done;
  }
  if (memchr(text, '\0', length) != NULL) {
    say(error, error_size, "%s holds a NUL byte: not the file export wrote", path);
    goto done;
  }
  if (parse_metadata(text, &found, path, error, error_size) != 0) goto done;
  if (int_value(&found, "format_version", 0, INT_MAX, &version, path, error,
                error_size) != 0) {
    goto done;
  }
  if (version != KIT_BUNDLE_FORMAT_VERSION) {
    say(error, error_size, "%s: the bundle has format version %d, and this program reads "
        "version %d only: export it again, or use the example of that kit version", path,
        version, KIT_BUNDLE_FORMAT_VERSION);
    goto done;
  }
  if (int_value(&found, "source_length", 1, MAX_LENGTH, &bundle->source_length, path,
                error, error_size) ||
      int_value(&found, "target_length", 2, MAX_LENGTH, &bundle->target_length, path,
                error, error_size) ||
      int_value(&found, "max_new_tokens", 1, bundle->target_length - 1,
                &bundle->max_new_tokens, path, error, error_size) ||
      int_value(&found, "target_vocab_size", SPECIAL_TOKENS, MAX_VOCABULARY_SIZE,
                &bundle->target_vocab_size, path, error, error_size) ||
      int_value(&found, "pad_id", 0, SPECIAL_TOKENS - 1, &bundle->pad_id, path, error,
                error_size) ||
      int_value(&found, "unk_id", 0, SPECIAL_TOKENS - 1, &bundle->unk_id, path, error,
                error_size) ||
      int_value(&found, "bos_id", 0, SPECIAL_TOKENS - 1, &bundle->bos_id, path, error,
                error_size) ||
      int_value(&found, "eos_id", 0, SPECIAL_TOKENS - 1, &bundle->eos_id, path, error,
                error_size) ||
      text_value(&found, "model_file", &model, path, error, error_size) ||
      text_value(&found, "encode", &encode, path, error, error_size) ||
      text_value(&found, "decode_step", &decode_step, path, error, error_size)) {
    goto done;
  }
  /* The vocabulary files give tokens their text; the ids 0-3 are the kit's own. */
  if (bundle->pad_id != 0 || bundle->unk_id != 1 || bundle->bos_id != 2 ||
      bundle->eos_id != 3) {
    say(error, error_size, "%s: the special ids must be pad 0, unk 1, bos 2, eos 3 as in "
        "every kit tokenizer", path);
    goto done;
  }
  bundle->model_path = inside(directory, model, "model_file", error, error_size);
  bundle->encode = copy(encode);
  bundle->decode_step = copy(decode_step);
  if (bundle->model_path == NULL || bundle->encode == NULL || bundle->decode_step == NULL) {
    if (bundle->model_path) say(error, error_size, "out of memory");
    goto done;
  }
  /* The SHA-256 of every file bundle.txt records, before any of them is read. */
  if (kit_verify_bundle_files(directory, found.entries, found.count, error, error_size)) {
    goto done;
  }
  if (open_side(directory, &found, "source", &bundle->source, path, error, error_size) ||
      open_side(directory, &found, "target", &bundle->target, path, error, error_size)) {
    goto done;
  }
  if (bundle->target.size > bundle->target_vocab_size) {
    say(error, error_size, "%s: the target tokenizer has %d tokens, more than the model's "
        "%d", path, bundle->target.size, bundle->target_vocab_size);
    goto done;
  }
  status = 0;
done:
  free(found.entries);
  free(text);
  free(path);
  if (status != 0) kit_bundle_close(bundle);
  return status;
}

void kit_bundle_close(kit_bundle* bundle) {
  free(bundle->model_path);
  free(bundle->encode);
  free(bundle->decode_step);
  free_vocabulary(&bundle->source);
  free_vocabulary(&bundle->target);
  memset(bundle, 0, sizeof(*bundle));
}

/* ---- tokenizing ------------------------------------------------------------------ */

/* The code point at s[0..], strictly UTF-8 (as Python decodes it: no overlong forms, no
 * surrogates, nothing past U+10FFFF): its byte count, or 0 if invalid. */
static size_t next_code_point(const unsigned char* s, size_t n, uint32_t* code_point) {
  unsigned char lead = s[0];
  size_t count;
  uint32_t value, smallest;
  if (lead < 0x80) {
    *code_point = lead;
    return 1;
  } else if (lead >= 0xC2 && lead <= 0xDF) {
    count = 2, value = lead & 0x1Fu, smallest = 0x80;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    count = 3, value = lead & 0x0Fu, smallest = 0x800;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    count = 4, value = lead & 0x07u, smallest = 0x10000;
  } else {
    return 0;
  }
  if (n < count) return 0;
  for (size_t i = 1; i < count; ++i) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    value = (value << 6) | (s[i] & 0x3Fu);
  }
  if (value < smallest || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
    return 0;
  }
  *code_point = value;
  return count;
}

/* Whether Python's str.isspace() is true for the code point: what str.split() splits
 * on, and so what separates the word tokenizer's words. */
static int is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 ||
         c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

long kit_unescape(char* text, size_t length) {
  size_t write = 0;
  for (size_t read = 0; read < length; ++read) {
    char c = text[read];
    if (c == '\\') {
      c = ++read < length ? text[read] : '\0';
      if (c != '\\' && c != 'n' && c != 'r') return -1;
      c = c == 'n' ? '\n' : c == 'r' ? '\r' : '\\';
    }
    text[write++] = c;
  }
  return (long)write;
}

int kit_text_is_blank(const char* text, size_t length) {
  const unsigned char* bytes = (const unsigned char*)text;
  for (size_t at = 0; at < length;) {
    uint32_t code_point;
    size_t size = next_code_point(bytes + at, length - at, &code_point);
    if (size == 0 || !is_space(code_point)) return 0;
    at += size;
  }
  return 1;
}

/* The SentencePiece side of kit_source_ids, for UTF-8 text. */
static int sentencepiece_ids(const kit_bundle* bundle, const char* text, size_t length,
                             int32_t* ids, int* tokens, int* unknown) {
#ifdef KIT_WITH_SENTENCEPIECE
  int count = kit_sentencepiece_encode(bundle->source.pieces, text, length, ids,
                                       bundle->source_length, unknown);
  if (count < 0) return -2;
  for (int i = count; i < bundle->source_length; ++i) ids[i] = bundle->pad_id;
  *tokens = count;
  return 0;
#else
  (void)bundle, (void)text, (void)length, (void)ids, (void)tokens, (void)unknown;
  return -2; /* not reached: such a side is refused at open */
#endif
}

int kit_source_ids(const kit_bundle* bundle, const char* text, size_t length,
                   int32_t* ids, int* tokens, int* unknown, size_t* bad_offset) {
  const unsigned char* bytes = (const unsigned char*)text;
  const kit_vocabulary* vocabulary = &bundle->source;
  if (vocabulary->pieces != NULL) {
    for (size_t at = 0; at < length;) { /* the library would take any bytes */
      uint32_t code_point;
      size_t size = next_code_point(bytes + at, length - at, &code_point);
      if (size == 0) {
        *bad_offset = at;
        return -1;
      }
      at += size;
    }
    return sentencepiece_ids(bundle, text, length, ids, tokens, unknown);
  }
  int count = 0, missing = 0;
  size_t unit_start = 0;
  int in_word = 0;
  for (size_t at = 0; at <= length;) {
    uint32_t code_point = ' ';
    size_t size = 1;
    if (at < length) {
      size = next_code_point(bytes + at, length - at, &code_point);
      if (size == 0) {
        *bad_offset = at;
        return -1;
      }
    }
    /* A char unit is one code point; a word unit ends at whitespace or at the end. */
    size_t unit_end = 0;
    int unit = 0;
    if (!vocabulary->words) {
      unit = at < length;
      unit_start = at, unit_end = at + size;
    } else if (is_space(code_point) || at == length) {
      unit = in_word;
      unit_end = at;
      in_word = 0;
    } else if (!in_word) {
      in_word = 1;
      unit_start = at;
    }
    if (unit) {
      int id = token_id(vocabulary, text + unit_start, unit_end - unit_start);
      if (id < 0) {
        id = bundle->unk_id;
        ++missing;
      }
      if (count < bundle->source_length) ids[count] = id;
      ++count;
    }
    at += size;
  }
  for (int i = count; i < bundle->source_length; ++i) ids[i] = bundle->pad_id;
  *tokens = count;
  *unknown = missing;
  return 0;
}

char* kit_target_text(const kit_bundle* bundle, const int32_t* ids, int count) {
  static const char unknown_text[] = "\xEF\xBF\xBD"; /* U+FFFD */
  const kit_vocabulary* vocabulary = &bundle->target;
#ifdef KIT_WITH_SENTENCEPIECE
  if (vocabulary->pieces != NULL) {
    return kit_sentencepiece_text(vocabulary->pieces, ids, count);
  }
#endif
  const char* separator = vocabulary->words ? " " : "";
  size_t capacity = 1;
  for (int pass = 0; pass < 2; ++pass) { /* 1: measure, 2: write */
    char* text = pass ? malloc(capacity) : NULL;
    if (pass && text == NULL) return NULL;
    size_t used = 0;
    int written = 0;
    for (int i = 0; i < count && ids[i] != bundle->eos_id; ++i) {
      int id = ids[i];
      if (id == bundle->pad_id || id == bundle->bos_id) continue;
      const char* token = unknown_text;
      size_t length = sizeof(unknown_text) - 1;
      if (id != bundle->unk_id && id >= 0 && id < vocabulary->size) {
        token = vocabulary->tokens[id].text;
        length = vocabulary->tokens[id].length;
      }
      size_t gap = written++ ? strlen(separator) : 0;
      if (pass) {
        memcpy(text + used, separator, gap);
        memcpy(text + used + gap, token, length);
      }
      used += gap + length;
    }
    if (pass) {
      text[used] = '\0';
      return text;
    }
    capacity = used + 1;
  }
  return NULL;
}
