/* The decode loop through LiteRT's CompiledModel C API. See kit_loop.h. */
#include "kit_loop.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "litert_c_api.h"

/* Names the bundle's signatures use (README, "The exported file"). */
static const char kSourceIds[] = "source_ids";
static const char kTokenIds[] = "token_ids";
static const char kPosition[] = "position";
static const char kLogits[] = "logits";

/* One tensor's host memory and the LiteRT buffer over it, bound wherever its name is. */
typedef struct {
  const char* name; /* owned by the model */
  LiteRtRankedTensorType type;
  size_t bytes;     /* elements x element size */
  size_t capacity;  /* what LiteRT asked for, at least `bytes` */
  void* memory;
  LiteRtTensorBuffer buffer;
} slot;

/* The slots bound to one signature's inputs or outputs, in the signature's order. */
typedef struct {
  size_t count;
  slot** slots;
  LiteRtTensorBuffer* buffers; /* what LiteRtRunCompiledModel takes */
} binding;

struct kit_decoder {
  LiteRtEnvironment environment;
  LiteRtModel model;
  LiteRtCompiledModel compiled;
  LiteRtParamIndex signature[2]; /* encode, decode_step */
  binding bindings[4];           /* encode in, encode out, decode_step in, out */
  slot* slots;
  size_t slot_count;
  slot *source, *token, *position, *logits;
  int source_length, vocab_size, cache_length;
};

enum { ENCODE, DECODE };
enum { ENCODE_IN, ENCODE_OUT, DECODE_IN, DECODE_OUT };

static void say(char* error, size_t size, const char* format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(error, size, format, args);
  va_end(args);
}

static const char* status_name(LiteRtStatus status) {
  switch (status) {
    case kLiteRtStatusOk: return "ok";
    case kLiteRtStatusErrorInvalidArgument: return "invalid argument";
    case kLiteRtStatusErrorMemoryAllocationFailure: return "out of memory";
    case kLiteRtStatusErrorRuntimeFailure: return "runtime failure";
    case kLiteRtStatusErrorMissingInputTensor: return "missing input tensor";
    case kLiteRtStatusErrorUnsupported: return "unsupported";
    case kLiteRtStatusErrorNotFound: return "not found";
    case kLiteRtStatusErrorFileIO: return "file I/O error";
    case kLiteRtStatusErrorInvalidFlatbuffer: return "not a valid model file";
    case kLiteRtStatusErrorCompilation: return "compilation failed";
    default: return "error";
  }
}

/* Runs a LiteRT call; on failure writes "what: <status>" and jumps to `fail`. */
#define CHECK(call, ...)                                                      \
  do {                                                                        \
    LiteRtStatus status_ = (call);                                            \
    if (status_ != kLiteRtStatusOk) {                                         \
      char what_[256];                                                        \
      snprintf(what_, sizeof(what_), __VA_ARGS__);                            \
      say(error, error_size, "%s: LiteRT says %s (status %d)", what_,         \
          status_name(status_), (int)status_);                                \
      goto fail;                                                              \
    }                                                                         \
  } while (0)

static size_t element_size(LiteRtElementType type) {
  switch (type) {
    case kLiteRtElementTypeFloat32:
    case kLiteRtElementTypeInt32: return 4;
    case kLiteRtElementTypeFloat16: return 2;
    default: return 0;
  }
}

static size_t element_count(const LiteRtLayout* layout) {
  size_t count = 1;
  for (unsigned i = 0; i < layout->rank; ++i) {
    count *= layout->dimensions[i] > 0 ? (size_t)layout->dimensions[i] : 0;
  }
  return count;
}

static int same_type(const LiteRtRankedTensorType* a, const LiteRtRankedTensorType* b) {
  if (a->element_type != b->element_type || a->layout.rank != b->layout.rank) return 0;
  for (unsigned i = 0; i < a->layout.rank; ++i) {
    if (a->layout.dimensions[i] != b->layout.dimensions[i]) return 0;
  }
  return 1;
}

static slot* find_slot(kit_decoder* decoder, const char* name) {
  for (size_t i = 0; i < decoder->slot_count; ++i) {
    if (strcmp(decoder->slots[i].name, name) == 0) return &decoder->slots[i];
  }
  return NULL;
}

static int find_signature(LiteRtModel model, const char* key, LiteRtParamIndex* index,
                          LiteRtSignature* found, char* error, size_t error_size) {
  LiteRtParamIndex count = 0;
  CHECK(LiteRtGetNumModelSignatures(model, &count), "reading the model's signatures");
  for (LiteRtParamIndex i = 0; i < count; ++i) {
    const char* name;
    CHECK(LiteRtGetModelSignature(model, i, found), "reading signature %zu", i);
    CHECK(LiteRtGetSignatureKey(*found, &name), "reading signature %zu's name", i);
    if (strcmp(name, key) == 0) {
      *index = i;
      return 0;
    }
  }
  say(error, error_size, "the model has no signature %s: not the file bundle.txt "
      "describes", key);
fail:
  return -1;
}

/* Binds one tensor of a signature: to the slot of the same name where `shared` allows
 * (encode's outputs, the caches), else to a new slot. */
static int bind(kit_decoder* decoder, LiteRtSignature signature, int which, size_t index,
                int shared, char* error, size_t error_size) {
  int input = which == ENCODE_IN || which == DECODE_IN;
  const char* name;
  LiteRtTensor tensor;
  LiteRtRankedTensorType type;
  if (input) {
    CHECK(LiteRtGetSignatureInputName(signature, index, &name), "reading an input name");
    CHECK(LiteRtGetSignatureInputTensorByIndex(signature, index, &tensor),
          "reading input %s", name);
  } else {
    CHECK(LiteRtGetSignatureOutputName(signature, index, &name), "reading an output name");
    CHECK(LiteRtGetSignatureOutputTensorByIndex(signature, index, &tensor),
          "reading output %s", name);
  }
  CHECK(LiteRtGetRankedTensorType(tensor, &type), "reading the type of %s", name);
  slot* target = shared ? find_slot(decoder, name) : NULL;
  if (target != NULL && !same_type(&target->type, &type)) {
    say(error, error_size, "%s differs in type or shape between the signatures that "
        "share it: not a file export wrote", name);
    return -1;
  }
  if (target == NULL) {
    size_t size = element_size(type.element_type);
    if (size == 0 || type.layout.rank == 0 || type.layout.has_strides) {
      say(error, error_size, "%s is not a dense float32, float16 or int32 tensor of fixed "
          "shape: not a file export wrote", name);
      return -1;
    }
    target = &decoder->slots[decoder->slot_count++];
    target->name = name;
    target->type = type;
    target->bytes = target->capacity = size * element_count(&type.layout);
  }
  LiteRtTensorBufferRequirements requirements;
  size_t needed = 0;
  LiteRtParamIndex signature_index = decoder->signature[which < DECODE_IN ? ENCODE : DECODE];
  if (input) {
    CHECK(LiteRtGetCompiledModelInputBufferRequirements(decoder->compiled, signature_index,
                                                         index, &requirements),
          "reading what %s's buffer needs", name);
  } else {
    CHECK(LiteRtGetCompiledModelOutputBufferRequirements(decoder->compiled, signature_index,
                                                          index, &requirements),
          "reading what %s's buffer needs", name);
  }
  CHECK(LiteRtGetTensorBufferRequirementsBufferSize(requirements, &needed),
        "reading %s's buffer size", name);
  if (needed > target->capacity) target->capacity = needed;
  decoder->bindings[which].slots[index] = target;
  return 0;
fail:
  return -1;
}

static int bind_signature(kit_decoder* decoder, LiteRtSignature signature, int which,
                          char* error, size_t error_size) {
  int input = which == ENCODE_IN || which == DECODE_IN;
  LiteRtParamIndex count = 0;
  if (input) {
    CHECK(LiteRtGetNumSignatureInputs(signature, &count), "counting inputs");
  } else {
    CHECK(LiteRtGetNumSignatureOutputs(signature, &count), "counting outputs");
  }
  binding* bound = &decoder->bindings[which];
  bound->count = count;
  bound->slots = calloc(count ? count : 1, sizeof(slot*));
  bound->buffers = calloc(count ? count : 1, sizeof(LiteRtTensorBuffer));
  if (bound->slots == NULL || bound->buffers == NULL) {
    say(error, error_size, "out of memory");
    return -1;
  }
  /* decode_step's inputs share encode's outputs and the caches; its outputs share the
   * caches: a cache is the input and the output of one name. */
  for (size_t i = 0; i < count; ++i) {
    if (bind(decoder, signature, which, i, which >= DECODE_IN, error, error_size) != 0) {
      return -1;
    }
  }
  return 0;
fail:
  return -1;
}

/* Allocates every slot's aligned memory and wraps it in a LiteRT buffer. */
static int allocate(kit_decoder* decoder, char* error, size_t error_size) {
  const size_t alignment = LITERT_HOST_MEMORY_BUFFER_ALIGNMENT;
  for (size_t i = 0; i < decoder->slot_count; ++i) {
    slot* s = &decoder->slots[i];
    size_t size = (s->capacity + alignment - 1) / alignment * alignment;
    s->memory = aligned_alloc(alignment, size);
    if (s->memory == NULL) {
      say(error, error_size, "out of memory for %s (%zu bytes)", s->name, size);
      return -1;
    }
    memset(s->memory, 0, size);
    CHECK(LiteRtCreateTensorBufferFromHostMemory(&s->type, s->memory, size, NULL,
                                                 &s->buffer),
          "wrapping %s's memory", s->name);
  }
  for (int which = 0; which < 4; ++which) {
    binding* bound = &decoder->bindings[which];
    for (size_t i = 0; i < bound->count; ++i) bound->buffers[i] = bound->slots[i]->buffer;
  }
  return 0;
fail:
  return -1;
}

/* The roles the loop gives to decode_step's tensors, checked against their shapes. */
static int check_roles(kit_decoder* decoder, char* error, size_t error_size) {
  binding* encode_in = &decoder->bindings[ENCODE_IN];
  decoder->source = encode_in->count == 1 ? encode_in->slots[0] : NULL;
  decoder->token = find_slot(decoder, kTokenIds);
  decoder->position = find_slot(decoder, kPosition);
  decoder->logits = find_slot(decoder, kLogits);
  slot* source = decoder->source;
  if (source == NULL || strcmp(source->name, kSourceIds) != 0 ||
      source->type.element_type != kLiteRtElementTypeInt32 || source->type.layout.rank != 2 ||
      source->type.layout.dimensions[0] != 1) {
    say(error, error_size, "encode must take one input, source_ids, int32 (1, S)");
    return -1;
  }
  if (decoder->token == NULL || decoder->token->bytes != 4 ||
      decoder->token->type.element_type != kLiteRtElementTypeInt32 ||
      decoder->position == NULL || decoder->position->bytes != 4 ||
      decoder->position->type.element_type != kLiteRtElementTypeInt32 ||
      decoder->logits == NULL || decoder->logits->type.element_type !=
      kLiteRtElementTypeFloat32 || decoder->logits->type.layout.rank != 2 ||
      decoder->logits->type.layout.dimensions[0] != 1) {
    say(error, error_size, "decode_step must take token_ids int32 (1, 1) and position "
        "int32 (1,) and give logits float32 (1, V): not a file export wrote");
    return -1;
  }
  decoder->source_length = source->type.layout.dimensions[1];
  decoder->vocab_size = decoder->logits->type.layout.dimensions[1];
  /* Every other decode_step input is one of encode's outputs or a cache (an output of
   * its own name), and every other output a cache: anything else would be left unset. */
  binding* decode_in = &decoder->bindings[DECODE_IN];
  binding* decode_out = &decoder->bindings[DECODE_OUT];
  decoder->cache_length = 0;
  for (size_t i = 0; i < decode_out->count; ++i) {
    slot* s = decode_out->slots[i];
    if (s == decoder->logits) continue;
    int is_input = 0;
    for (size_t j = 0; j < decode_in->count; ++j) is_input |= decode_in->slots[j] == s;
    /* A cache is (1, H, T, Dh): T slots, one per position. */
    if (!is_input || s->type.layout.rank != 4) {
      say(error, error_size, "decode_step's output %s is neither logits nor a (1, H, T, "
          "Dh) cache it also takes as input", s->name);
      return -1;
    }
    decoder->cache_length = s->type.layout.dimensions[2];
  }
  for (size_t j = 0; j < decode_in->count; ++j) {
    slot* s = decode_in->slots[j];
    int known = s == decoder->token || s == decoder->position;
    for (size_t i = 0; i < decoder->bindings[ENCODE_OUT].count; ++i) {
      known |= decoder->bindings[ENCODE_OUT].slots[i] == s;
    }
    for (size_t i = 0; i < decode_out->count; ++i) known |= decode_out->slots[i] == s;
    if (!known) {
      say(error, error_size, "decode_step's input %s is none of token_ids, position, "
          "encode's outputs or a cache: not a file export wrote", s->name);
      return -1;
    }
  }
  if (decoder->cache_length < 2) {
    say(error, error_size, "decode_step has no KV cache of T >= 2 slots");
    return -1;
  }
  return 0;
}

int kit_decoder_open(const char* model_path, const char* encode, const char* decode_step,
                     int num_threads, kit_decoder** result, char* error,
                     size_t error_size) {
  *result = NULL;
  LiteRtOptions options = NULL;
  kit_decoder* decoder = calloc(1, sizeof(kit_decoder));
  if (decoder == NULL) {
    say(error, error_size, "out of memory");
    return -1;
  }
  CHECK(LiteRtCreateEnvironment(0, NULL, &decoder->environment),
        "creating LiteRT's environment");
  CHECK(LiteRtCreateModelFromFile(decoder->environment, model_path, &decoder->model),
        "loading %s", model_path);
  LiteRtSignature signatures[2];
  if (find_signature(decoder->model, encode, &decoder->signature[ENCODE],
                     &signatures[ENCODE], error, error_size) ||
      find_signature(decoder->model, decode_step, &decoder->signature[DECODE],
                     &signatures[DECODE], error, error_size)) {
    goto fail;
  }
  CHECK(LiteRtCreateOptions(&options), "creating compilation options");
  CHECK(LiteRtSetOptionsHardwareAccelerators(options, kLiteRtHwAcceleratorCpu),
        "choosing the CPU");
  if (num_threads > 0) {
    /* XNNPACK's options: TOML text under the identifier "xnnpack" (litert_c_api.h). */
    char* payload = malloc(32);
    LiteRtOpaqueOptions cpu = NULL;
    if (payload == NULL) {
      say(error, error_size, "out of memory");
      goto fail;
    }
    snprintf(payload, 32, "num_threads = %d\n", num_threads);
    LiteRtStatus made = LiteRtCreateOpaqueOptions("xnnpack", payload, free, &cpu);
    if (made != kLiteRtStatusOk) free(payload);
    CHECK(made, "making the CPU options");
    LiteRtStatus added = LiteRtAddOpaqueOptions(options, cpu);
    if (added != kLiteRtStatusOk) LiteRtDestroyOpaqueOptions(cpu);
    CHECK(added, "adding the CPU options");
  }
  CHECK(LiteRtCreateCompiledModel(decoder->environment, decoder->model, options,
                                  &decoder->compiled),
        "compiling %s for the CPU", model_path);
  LiteRtDestroyOptions(options);
  options = NULL;

  /* At most one slot per tensor of the two signatures. */
  size_t most = 0;
  for (int which = 0; which < 2; ++which) {
    LiteRtParamIndex inputs = 0, outputs = 0;
    CHECK(LiteRtGetNumSignatureInputs(signatures[which], &inputs), "counting inputs");
    CHECK(LiteRtGetNumSignatureOutputs(signatures[which], &outputs), "counting outputs");
    most += inputs + outputs;
  }
  decoder->slots = calloc(most ? most : 1, sizeof(slot));
  if (decoder->slots == NULL) {
    say(error, error_size, "out of memory");
    goto fail;
  }
  if (bind_signature(decoder, signatures[ENCODE], ENCODE_IN, error, error_size) ||
      bind_signature(decoder, signatures[ENCODE], ENCODE_OUT, error, error_size) ||
      bind_signature(decoder, signatures[DECODE], DECODE_IN, error, error_size) ||
      bind_signature(decoder, signatures[DECODE], DECODE_OUT, error, error_size) ||
      check_roles(decoder, error, error_size) || allocate(decoder, error, error_size)) {
    goto fail;
  }
  *result = decoder;
  return 0;
fail:
  if (options) LiteRtDestroyOptions(options);
  kit_decoder_close(decoder);
  return -1;
}

int kit_decoder_source_length(const kit_decoder* decoder) { return decoder->source_length; }

int kit_decoder_vocab_size(const kit_decoder* decoder) { return decoder->vocab_size; }

static int run(kit_decoder* decoder, int which, char* error, size_t error_size) {
  binding* in = &decoder->bindings[which == ENCODE ? ENCODE_IN : DECODE_IN];
  binding* out = &decoder->bindings[which == ENCODE ? ENCODE_OUT : DECODE_OUT];
  CHECK(LiteRtRunCompiledModel(decoder->compiled, decoder->signature[which], in->count,
                               in->buffers, out->count, out->buffers),
        "running %s", which == ENCODE ? "encode" : "decode_step");
  return 0;
fail:
  return -1;
}

int kit_decoder_greedy(kit_decoder* decoder, const int32_t* source_ids, int bos_id,
                       int eos_id, int max_new_tokens, int32_t* ids, char* error,
                       size_t error_size) {
  if (max_new_tokens < 1 || max_new_tokens >= decoder->cache_length + 1) {
    say(error, error_size, "max_new_tokens must be in [1, %d]. Received: %d",
        decoder->cache_length, max_new_tokens);
    return -1;
  }
  memcpy(decoder->source->memory, source_ids,
         (size_t)decoder->source_length * sizeof(int32_t));
  if (run(decoder, ENCODE, error, error_size) != 0) return -1;
  /* Slots past `position` are masked out, but a stale value times a zero weight is only
   * zero when finite: each source starts from clean caches. */
  binding* out = &decoder->bindings[DECODE_OUT];
  for (size_t i = 0; i < out->count; ++i) {
    if (out->slots[i] != decoder->logits) {
      memset(out->slots[i]->memory, 0, out->slots[i]->bytes);
    }
  }
  int32_t* token = decoder->token->memory;
  int32_t* position = decoder->position->memory;
  const float* logits = decoder->logits->memory;
  int count = 0;
  *token = bos_id;
  for (int step = 0; step < max_new_tokens; ++step) {
    *position = step;
    if (run(decoder, DECODE, error, error_size) != 0) return -1;
    int best = 0;
    for (int v = 0; v < decoder->vocab_size; ++v) {
      if (!isfinite(logits[v])) {
        say(error, error_size, "decode_step gave a non-finite logit at position %d", step);
        return -1;
      }
      if (logits[v] > logits[best]) best = v;
    }
    ids[count++] = best;
    if (best == eos_id) break;
    *token = best;
  }
  return count;
}

void kit_decoder_close(kit_decoder* decoder) {
  if (decoder == NULL) return;
  for (size_t i = 0; i < decoder->slot_count; ++i) {
    if (decoder->slots[i].buffer) LiteRtDestroyTensorBuffer(decoder->slots[i].buffer);
    free(decoder->slots[i].memory);
  }
  for (int which = 0; which < 4; ++which) {
    free(decoder->bindings[which].slots);
    free(decoder->bindings[which].buffers);
  }
  free(decoder->slots);
  if (decoder->compiled) LiteRtDestroyCompiledModel(decoder->compiled);
  if (decoder->model) LiteRtDestroyModel(decoder->model);
  if (decoder->environment) LiteRtDestroyEnvironment(decoder->environment);
  free(decoder);
}
