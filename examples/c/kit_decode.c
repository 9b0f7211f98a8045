/* kit_decode: decodes each line of standard input with a kit bundle through LiteRT's C
 * API, and writes one output line per input line, in order.
 *
 *   kit_decode [--threads N] [--ids] [--escaped] [--max-new-tokens N] [--time]
 *              [--verbose] [--tokenize | --detokenize] BUNDLE_DIR < inputs
 *
 * As `python -m kit decode BUNDLE_DIR` does with greedy decoding: a blank input gives a
 * blank line; a character the model never saw, or a source longer than S, is warned
 * about on standard error and decoded anyway; a line that is not UTF-8 gives a blank
 * line, an error on standard error, and exit status 1 at the end.
 *
 *   --ids       writes the generated ids (EOS included when reached) instead of the
 *               text, for every input, blank ones included: the model's answer, as the
 *               Python runtime's Bundle.greedy_ids gives it.
 *   --escaped   each input line is unescaped as the vocabulary files are ("\\" is a
 *               backslash, "\n" a newline, "\r" a carriage return), so that an input
 *               may hold line breaks.
 *   --time      writes the time per token (tokenizing, encode and every decode_step)
 *               on standard error at the end.
 *   --verbose   keeps LiteRT's own log lines (silenced while loading and closing).
 *   --tokenize  runs no model: writes the S source ids the encoder would read for each
 *               input (the Python runtime's Bundle.source_ids), to check a tokenizer.
 *   --detokenize
 *               runs no model: each input line holds ids separated by spaces, and the
 *               output is their text as the target tokenizer decodes generated ids
 *               (the Python runtime's Bundle.text_of).
 *
 * Exit status 2: bad usage; 1: the bundle could not be read or run, or a line was
 * refused.
 */
#define _POSIX_C_SOURCE 200809L /* getline, clock_gettime */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kit_bundle.h"
#include "kit_loop.h"

static const char kUsage[] =
    "usage: kit_decode [--threads N] [--ids] [--escaped] [--max-new-tokens N] [--time] "
    "[--verbose] [--tokenize | --detokenize] BUNDLE_DIR < inputs";

typedef struct {
  const char* bundle;
  int threads, ids, escaped, time, verbose, max_new_tokens, tokenize, detokenize;
} arguments;

static int positive(const char* text, int* value) {
  char* end;
  errno = 0;
  long number = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || number < 1 || number > INT_MAX) return 0;
  *value = (int)number;
  return 1;
}

static int parse(int argc, char** argv, arguments* args) {
  memset(args, 0, sizeof(*args));
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (strcmp(arg, "--ids") == 0) {
      args->ids = 1;
    } else if (strcmp(arg, "--escaped") == 0) {
      args->escaped = 1;
    } else if (strcmp(arg, "--time") == 0) {
      args->time = 1;
    } else if (strcmp(arg, "--verbose") == 0) {
      args->verbose = 1;
    } else if (strcmp(arg, "--tokenize") == 0) {
      args->tokenize = 1;
    } else if (strcmp(arg, "--detokenize") == 0) {
      args->detokenize = 1;
    } else if (strcmp(arg, "--threads") == 0 || strcmp(arg, "--max-new-tokens") == 0) {
      int* value = arg[2] == 't' ? &args->threads : &args->max_new_tokens;
      if (i + 1 == argc || !positive(argv[i + 1], value)) {
        fprintf(stderr, "%s\nkit_decode: error: %s takes a positive integer\n", kUsage,
                arg);
        return 0;
      }
      ++i;
    } else if (arg[0] == '-' || args->bundle != NULL) {
      fprintf(stderr, "%s\nkit_decode: error: unexpected argument %s\n", kUsage, arg);
      return 0;
    } else {
      args->bundle = arg;
    }
  }
  if (args->bundle == NULL) {
    fprintf(stderr, "%s\nkit_decode: error: the bundle directory is required\n", kUsage);
    return 0;
  }
  if (args->tokenize + args->detokenize + args->ids > 1) {
    fprintf(stderr, "%s\nkit_decode: error: --tokenize, --detokenize and --ids exclude "
            "each other\n", kUsage);
    return 0;
  }
  return 1;
}

/* --detokenize: the ids of one line (decimal integers separated by spaces) into
 * *ids, grown as needed; their count, or -1 for anything else on the line, or -2 when
 * out of memory. */
static int parse_ids(const char* text, size_t length, int32_t** ids, size_t* capacity) {
  int count = 0;
  size_t at = 0;
  while (at < length) {
    if (text[at] == ' ') {
      ++at;
      continue;
    }
    long value = 0;
    size_t start = at;
    int negative = text[at] == '-';
    if (negative) ++at;
    while (at < length && text[at] >= '0' && text[at] <= '9' && value <= INT32_MAX) {
      value = value * 10 + (text[at++] - '0');
    }
    if (at == start + (size_t)negative || value > INT32_MAX ||
        (at < length && text[at] != ' ')) {
      return -1;
    }
    if ((size_t)count == *capacity) {
      size_t larger = *capacity ? 2 * *capacity : 64;
      int32_t* grown = realloc(*ids, larger * sizeof(int32_t));
      if (grown == NULL) return -2;
      *ids = grown, *capacity = larger;
    }
    (*ids)[count++] = (int32_t)(negative ? -value : value);
  }
  return count;
}

static double seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* LiteRT logs what it loads on standard error; unless --verbose, that is silenced
 * while it loads and closes. `saved` is the real stderr's descriptor, or -1. */
static int silence_stderr(int verbose) {
  if (verbose) return -1;
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  int null = open("/dev/null", O_WRONLY);
  if (saved < 0 || null < 0 || dup2(null, STDERR_FILENO) < 0) {
    if (null >= 0) close(null);
    if (saved >= 0) close(saved);
    return -1;
  }
  close(null);
  return saved;
}

static void restore_stderr(int saved) {
  if (saved < 0) return;
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
}

/* Writes one output line: the ids, or their text. Returns 0, or -1 out of memory. */
static int write_output(const kit_bundle* bundle, const int32_t* ids, int count,
                        int as_ids) {
  if (as_ids) {
    for (int i = 0; i < count; ++i) printf(i ? " %d" : "%d", (int)ids[i]);
    putchar('\n');
    return 0;
  }
  char* text = kit_target_text(bundle, ids, count);
  if (text == NULL) return -1;
  printf("%s\n", text);
  free(text);
  return 0;
}

int main(int argc, char** argv) {
  arguments args;
  if (!parse(argc, argv, &args)) return 2;
  char error[1024];
  kit_bundle bundle;
  kit_decoder* decoder = NULL;
  if (kit_bundle_open(args.bundle, &bundle, error, sizeof(error)) != 0) {
    fprintf(stderr, "kit_decode: error: %s\n", error);
    return 1;
  }
  int status = 1;
  char* line = NULL;
  size_t line_capacity = 0;
  int32_t* given = NULL; /* --detokenize: a line's ids */
  size_t given_capacity = 0;
  int32_t* source = malloc(sizeof(int32_t) * (size_t)bundle.source_length);
  int32_t* generated = malloc(sizeof(int32_t) * (size_t)bundle.max_new_tokens);
  if (source == NULL || generated == NULL) {
    fprintf(stderr, "kit_decode: error: out of memory\n");
    goto done;
  }
  if (args.max_new_tokens > bundle.max_new_tokens) {
    fprintf(stderr, "%s\nkit_decode: error: --max-new-tokens must be at most %d for this "
            "bundle\n", kUsage, bundle.max_new_tokens);
    status = 2;
    goto done;
  }
  int max_new_tokens = args.max_new_tokens ? args.max_new_tokens : bundle.max_new_tokens;
  int model = !args.tokenize && !args.detokenize;
  int saved = silence_stderr(args.verbose || !model);
  int opened = model ? kit_decoder_open(bundle.model_path, bundle.encode,
                                        bundle.decode_step, args.threads, &decoder, error,
                                        sizeof(error)) : 0;
  restore_stderr(saved);
  if (opened != 0) {
    fprintf(stderr, "kit_decode: error: %s\n", error);
    goto done;
  }
  if (model && (kit_decoder_source_length(decoder) != bundle.source_length ||
                kit_decoder_vocab_size(decoder) != bundle.target_vocab_size)) {
    fprintf(stderr, "kit_decode: error: %s's signatures read %d source ids and give %d "
            "logits, bundle.txt says %d and %d: not the model it describes\n",
            bundle.model_path, kit_decoder_source_length(decoder),
            kit_decoder_vocab_size(decoder), bundle.source_length,
            bundle.target_vocab_size);
    goto done;
  }
  status = 0;
  long number = 0, tokens_made = 0;
  double spent = 0;
  ssize_t read;
  while ((read = getline(&line, &line_capacity, stdin)) != -1) {
    ++number;
    size_t length = (size_t)read;
    while (length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) --length;
    char* text = line;
    if (number == 1 && length >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
      text += 3, length -= 3; /* an editor's byte order mark, not text */
    }
    if (args.escaped) {
      long unescaped = kit_unescape(text, length);
      if (unescaped < 0) {
        fprintf(stderr, "kit_decode: error: line %ld has an escape other than \\\\, \\n "
                "and \\r (--escaped)\n", number);
        putchar('\n');
        status = 1;
        continue;
      }
      length = (size_t)unescaped;
    }
    if (args.detokenize) {
      int count = parse_ids(text, length, &given, &given_capacity);
      if (count == -1) {
        fprintf(stderr, "kit_decode: error: line %ld is not ids separated by spaces "
                "(--detokenize)\n", number);
        putchar('\n');
        status = 1;
        continue;
      }
      if (count < 0 || write_output(&bundle, given, count, 0) != 0) {
        fprintf(stderr, "kit_decode: error: out of memory\n");
        status = 1;
        goto done;
      }
      continue;
    }
    if (!args.ids && !args.tokenize && kit_text_is_blank(text, length)) {
      putchar('\n');
      continue;
    }
    double start = seconds();
    int tokens, unknown;
    size_t bad;
    int tokenized = kit_source_ids(&bundle, text, length, source, &tokens, &unknown, &bad);
    if (tokenized == -1) {
      fprintf(stderr, "kit_decode: error: line %ld is not UTF-8 text (byte 0x%02x at "
              "offset %zu)\n", number, (unsigned char)text[bad], bad);
      putchar('\n');
      status = 1;
      continue;
    }
    if (tokenized != 0) {
      fprintf(stderr, "kit_decode: error: line %ld: the SentencePiece library failed "
              "(out of memory?)\n", number);
      status = 1;
      goto done;
    }
    if (unknown) {
      fprintf(stderr, "kit_decode: warning: line %ld: %d %s%s the model never saw; "
              "decoded anyway\n", number, unknown,
              bundle.source.words ? "word" : "character", unknown > 1 ? "s" : "");
    }
    if (tokens > bundle.source_length) {
      fprintf(stderr, "kit_decode: warning: line %ld: %d tokens long, the model reads %d: "
              "the rest is cut\n", number, tokens, bundle.source_length);
    }
    if (args.tokenize) {
      write_output(&bundle, source, bundle.source_length, 1);
      continue;
    }
    int count = kit_decoder_greedy(decoder, source, bundle.bos_id, bundle.eos_id,
                                   max_new_tokens, generated, error, sizeof(error));
    if (count < 0) {
      fprintf(stderr, "kit_decode: error: line %ld: %s\n", number, error);
      status = 1;
      goto done;
    }
    spent += seconds() - start;
    tokens_made += count;
    if (count == 0 || generated[count - 1] != bundle.eos_id) {
      fprintf(stderr, "kit_decode: warning: line %ld: no end of output after %d tokens; "
              "the output may be cut (--max-new-tokens, or the bundle's target length)\n",
              number, count);
    }
    if (write_output(&bundle, generated, count, args.ids) != 0) {
      fprintf(stderr, "kit_decode: error: out of memory\n");
      status = 1;
      goto done;
    }
  }
  if (ferror(stdin)) {
    fprintf(stderr, "kit_decode: error: cannot read standard input: %s\n",
            strerror(errno));
    status = 1;
  }
  if (args.time) {
    char threads[32] = "LiteRT's default";
    if (args.threads) snprintf(threads, sizeof(threads), "%d", args.threads);
    fprintf(stderr, "kit_decode: %ld lines, %ld tokens in %.6f s: %.4f ms a token "
            "(threads: %s)\n", number, tokens_made, spent,
            tokens_made ? spent * 1e3 / (double)tokens_made : 0.0, threads);
  }
done:
  if (fflush(stdout) != 0 && status == 0) {
    fprintf(stderr, "kit_decode: error: cannot write the output: %s\n", strerror(errno));
    status = 1;
  }
  free(line);
  free(given);
  free(source);
  free(generated);
  int saved_at_close = silence_stderr(args.verbose || decoder == NULL);
  kit_decoder_close(decoder);
  restore_stderr(saved_at_close);
  kit_bundle_close(&bundle);
  return status;
}
