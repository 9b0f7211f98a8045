/* A kit bundle's metadata and tokenizers, read from the files export writes for apps
 * without a JSON parser: bundle.txt (key=value lines) and one vocabulary file per side
 * (one token a line; "\\", "\n" and "\r" escaped). Plain C11 and the C library only.
 *
 * The tokenizers are the kit's "char" (one token per Unicode code point, no
 * normalization) and "word" (tokens separated by whitespace, as Python's str.split()
 * separates them) tokenizers, and "sentencepiece" (the side's .model file, through
 * kit_sentencepiece.h) where the program is built with KIT_WITH_SENTENCEPIECE; without
 * it, a SentencePiece side is refused with a message.
 */
#ifndef KIT_BUNDLE_H_
#define KIT_BUNDLE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The bundle format this code reads (bundle.txt's format_version). */
#define KIT_BUNDLE_FORMAT_VERSION 6

/* A token's bytes and its id. */
typedef struct {
  const char* text; /* in the vocabulary's storage; may hold any byte */
  size_t length;
  int id;
} kit_token;

struct kit_sentencepiece; /* kit_sentencepiece.h */

/* One side's tokenizer: for "char" and "word", its vocabulary (token i is the text of
 * id i, UTF-8); for "sentencepiece", its model (`pieces`) and size only. */
typedef struct {
  int size;
  int words;            /* 1: "word" tokenizer (units split on whitespace, joined by
                           " "); 0: "char" or "sentencepiece" */
  struct kit_sentencepiece* pieces; /* a "sentencepiece" side's model, owned; else NULL */
  char* storage;        /* every token's bytes, owned */
  kit_token* tokens;    /* by id */
  kit_token* by_text;   /* the ordinary tokens (id >= 4), sorted by their bytes */
  int by_text_count;
} kit_vocabulary;

typedef struct {
  char* model_path;   /* the .tflite file, inside the bundle directory */
  char* encode;       /* signature names of the (1, S) pair */
  char* decode_step;
  int source_length;  /* S */
  int target_length;  /* T */
  int max_new_tokens; /* T - 1 */
  int pad_id, unk_id, bos_id, eos_id;
  int target_vocab_size; /* the model's V: the length of the logits */
  kit_vocabulary source, target;
} kit_bundle;

/* Reads `directory`/bundle.txt and the vocabularies it names. Returns 0, or -1 with one
 * line in `error`; on failure nothing needs freeing. */
int kit_bundle_open(const char* directory, kit_bundle* bundle, char* error,
                    size_t error_size);
void kit_bundle_close(kit_bundle* bundle);

/* The S ids the encoder reads for `text` (`length` bytes of UTF-8): the source
 * tokenizer's ids, cut to S and right-padded with the pad id, no BOS or EOS (the kit's
 * kit.tokenizers.source_ids). Sets *tokens to the number of tokens the text makes
 * before the cut and *unknown to how many of them the vocabulary lacks. Returns 0;
 * -1 for text that is not UTF-8, with *bad_offset the offset of the first bad byte; -2
 * when a SentencePiece side fails (out of memory). */
int kit_source_ids(const kit_bundle* bundle, const char* text, size_t length,
                   int32_t* ids, int* tokens, int* unknown, size_t* bad_offset);

/* Unescapes text[0..length) in place as the vocabulary files are written ("\\" is a
 * backslash, "\n" a newline, "\r" a carriage return): its new length, or -1 for a
 * backslash followed by anything else. */
long kit_unescape(char* text, size_t length);

/* Whether `text` holds only whitespace (as Python's str.isspace() knows it), or nothing:
 * what `python -m kit decode` answers with a blank line. */
int kit_text_is_blank(const char* text, size_t length);

/* The text of generated ids as the target tokenizer decodes them: up to the first EOS,
 * pad and BOS skipped, unknown ids as U+FFFD, NUL-terminated. The caller frees it;
 * NULL when out of memory. */
char* kit_target_text(const kit_bundle* bundle, const int32_t* ids, int count);

#ifdef __cplusplus
}
#endif

#endif /* KIT_BUNDLE_H_ */
