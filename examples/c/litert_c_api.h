/* The part of LiteRT's C API that the kit's decode loop uses, declared by us.
 *
 * Written from LiteRT's public headers (litert/c/litert_common.h, litert_layout.h,
 * litert_model_types.h, litert_environment.h, litert_model.h, litert_options.h,
 * litert_opaque_options.h, litert_compiled_model.h, litert_tensor_buffer.h,
 * litert_tensor_buffer_requirements.h and litert_tensor_buffer_types.h of
 * github.com/google-ai-edge/LiteRT, commit f674577 of August 2026, after v2.2.0) for the
 * libLiteRt.so inside the ai-edge-litert 2.3.0 wheel, the version requirements-runtime.txt
 * pins. Only what this program calls is here; the types are the headers' own layout
 * (the sizes are checked below). The library exports these symbols with version node
 * VERS_1.0.
 *
 * Apps that build LiteRT from source, or take it from Maven or CocoaPods, include the
 * official headers instead and drop this file.
 */
#ifndef KIT_LITERT_C_API_H_
#define KIT_LITERT_C_API_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- litert_common.h ------------------------------------------------------------ */

typedef enum {
  kLiteRtStatusOk = 0,
  kLiteRtStatusErrorInvalidArgument = 1,
  kLiteRtStatusErrorMemoryAllocationFailure = 2,
  kLiteRtStatusErrorRuntimeFailure = 3,
  kLiteRtStatusErrorMissingInputTensor = 4,
  kLiteRtStatusErrorUnsupported = 5,
  kLiteRtStatusErrorNotFound = 6,
  kLiteRtStatusErrorTimeoutExpired = 7,
  kLiteRtStatusErrorWrongVersion = 8,
  kLiteRtStatusErrorUnknown = 9,
  kLiteRtStatusErrorAlreadyExists = 10,
  kLiteRtStatusErrorFileIO = 500,
  kLiteRtStatusErrorInvalidFlatbuffer = 501,
  kLiteRtStatusErrorDynamicLoading = 502,
  kLiteRtStatusErrorSerialization = 503,
  kLiteRtStatusErrorCompilation = 504,
  kLiteRtStatusErrorIndexOOB = 1000
} LiteRtStatus;

typedef size_t LiteRtParamIndex;

typedef int LiteRtHwAcceleratorSet; /* a bit set of the values below */
enum { kLiteRtHwAcceleratorCpu = 1 << 0 };

/* Opaque handles. */
typedef struct LiteRtEnvironmentT* LiteRtEnvironment;
typedef struct LiteRtModelT* LiteRtModel;
typedef struct LiteRtSignatureT* LiteRtSignature;
typedef struct LiteRtTensorT* LiteRtTensor;
typedef struct LiteRtOptionsT* LiteRtOptions;
typedef struct LiteRtOpaqueOptionsT* LiteRtOpaqueOptions;
typedef struct LiteRtCompiledModelT* LiteRtCompiledModel;
typedef struct LiteRtTensorBufferT* LiteRtTensorBuffer;
typedef struct LiteRtTensorBufferRequirementsT* LiteRtTensorBufferRequirements;
/* An environment option (a tagged value); this program passes none. */
typedef struct LiteRtEnvOptionOpaque LiteRtEnvOption;

/* ---- litert_layout.h, litert_model_types.h ------------------------------------ */

#define LITERT_TENSOR_MAX_RANK 8

typedef struct {
  unsigned int rank : 7;
  unsigned int has_strides : 1;
  int32_t dimensions[LITERT_TENSOR_MAX_RANK];
  uint32_t strides[LITERT_TENSOR_MAX_RANK];
} LiteRtLayout;

typedef enum {
  kLiteRtElementTypeNone = 0,
  kLiteRtElementTypeFloat32 = 1,
  kLiteRtElementTypeInt32 = 2,
  kLiteRtElementTypeFloat16 = 10
} LiteRtElementType;

typedef struct {
  LiteRtElementType element_type;
  LiteRtLayout layout;
} LiteRtRankedTensorType;

/* The headers assert these sizes on 64-bit targets: a mismatch would corrupt every
 * tensor type passed across the boundary, so it stops the build. */
#if defined(__SIZEOF_POINTER__) && __SIZEOF_POINTER__ == 8
_Static_assert(sizeof(LiteRtLayout) == 68, "LiteRtLayout size");
_Static_assert(offsetof(LiteRtLayout, dimensions) == 4, "LiteRtLayout.dimensions");
_Static_assert(sizeof(LiteRtRankedTensorType) == 72, "LiteRtRankedTensorType size");
_Static_assert(offsetof(LiteRtRankedTensorType, layout) == 4,
               "LiteRtRankedTensorType.layout");
#endif

/* ---- litert_tensor_buffer_types.h ---------------------------------------------- */

/* Host memory handed to LiteRT for the CPU must be aligned to this many bytes (an ABI
 * constant of every LiteRT release). */
#define LITERT_HOST_MEMORY_BUFFER_ALIGNMENT 64

typedef void (*LiteRtHostMemoryDeallocator)(void* addr);

/* ---- litert_environment.h ------------------------------------------------------ */

LiteRtStatus LiteRtCreateEnvironment(int num_options, const LiteRtEnvOption* options,
                                     LiteRtEnvironment* environment);
void LiteRtDestroyEnvironment(LiteRtEnvironment environment);

/* ---- litert_model.h ------------------------------------------------------------ */

LiteRtStatus LiteRtCreateModelFromFile(LiteRtEnvironment environment,
                                       const char* filename, LiteRtModel* model);
void LiteRtDestroyModel(LiteRtModel model);
LiteRtStatus LiteRtGetNumModelSignatures(LiteRtModel model,
                                         LiteRtParamIndex* num_signatures);
LiteRtStatus LiteRtGetModelSignature(LiteRtModel model, LiteRtParamIndex signature_index,
                                     LiteRtSignature* signature);
LiteRtStatus LiteRtGetSignatureKey(LiteRtSignature signature, const char** signature_key);
LiteRtStatus LiteRtGetNumSignatureInputs(LiteRtSignature signature,
                                         LiteRtParamIndex* num_inputs);
LiteRtStatus LiteRtGetSignatureInputName(LiteRtSignature signature,
                                         LiteRtParamIndex input_idx,
                                         const char** input_name);
LiteRtStatus LiteRtGetSignatureInputTensorByIndex(LiteRtSignature signature,
                                                  LiteRtParamIndex input_idx,
                                                  LiteRtTensor* tensor);
LiteRtStatus LiteRtGetNumSignatureOutputs(LiteRtSignature signature,
                                          LiteRtParamIndex* num_outputs);
LiteRtStatus LiteRtGetSignatureOutputName(LiteRtSignature signature,
                                          LiteRtParamIndex output_idx,
                                          const char** output_name);
LiteRtStatus LiteRtGetSignatureOutputTensorByIndex(LiteRtSignature signature,
                                                   LiteRtParamIndex output_idx,
                                                   LiteRtTensor* tensor);
LiteRtStatus LiteRtGetRankedTensorType(LiteRtTensor tensor,
                                       LiteRtRankedTensorType* ranked_tensor_type);

/* ---- litert_options.h, litert_opaque_options.h --------------------------------- */

LiteRtStatus LiteRtCreateOptions(LiteRtOptions* options);
/* Also destroys the opaque options added to `options`. */
void LiteRtDestroyOptions(LiteRtOptions options);
LiteRtStatus LiteRtSetOptionsHardwareAccelerators(LiteRtOptions options,
                                                  LiteRtHwAcceleratorSet accelerators);
/* Takes ownership of `opaque_options`. */
LiteRtStatus LiteRtAddOpaqueOptions(LiteRtOptions options,
                                    LiteRtOpaqueOptions opaque_options);
/* CPU (XNNPACK) options are opaque options whose identifier is "xnnpack" and whose
 * payload is a NUL-terminated TOML text such as "num_threads = 1\n" (what
 * litert/c/options/litert_cpu_options.cc makes; its Lrt* helpers are not exported by
 * the wheel's library). `payload_destructor` frees the payload when the options die. */
LiteRtStatus LiteRtCreateOpaqueOptions(const char* payload_identifier, void* payload_data,
                                       void (*payload_destructor)(void* payload_data),
                                       LiteRtOpaqueOptions* options);
void LiteRtDestroyOpaqueOptions(LiteRtOpaqueOptions options);

/* ---- litert_compiled_model.h --------------------------------------------------- */

LiteRtStatus LiteRtCreateCompiledModel(LiteRtEnvironment environment, LiteRtModel model,
                                       LiteRtOptions compilation_options,
                                       LiteRtCompiledModel* compiled_model);
void LiteRtDestroyCompiledModel(LiteRtCompiledModel compiled_model);
/* The returned requirements belong to the compiled model. */
LiteRtStatus LiteRtGetCompiledModelInputBufferRequirements(
    LiteRtCompiledModel compiled_model, LiteRtParamIndex signature_index,
    LiteRtParamIndex input_index, LiteRtTensorBufferRequirements* buffer_requirements);
LiteRtStatus LiteRtGetCompiledModelOutputBufferRequirements(
    LiteRtCompiledModel compiled_model, LiteRtParamIndex signature_index,
    LiteRtParamIndex output_index, LiteRtTensorBufferRequirements* buffer_requirements);
/* Buffers in the order of the signature's inputs and outputs. */
LiteRtStatus LiteRtRunCompiledModel(LiteRtCompiledModel compiled_model,
                                    LiteRtParamIndex signature_index,
                                    size_t num_input_buffers,
                                    LiteRtTensorBuffer* input_buffers,
                                    size_t num_output_buffers,
                                    LiteRtTensorBuffer* output_buffers);

/* ---- litert_tensor_buffer.h, litert_tensor_buffer_requirements.h --------------- */

LiteRtStatus LiteRtGetTensorBufferRequirementsBufferSize(
    LiteRtTensorBufferRequirements requirements, size_t* buffer_size);
/* Wraps caller-owned host memory (aligned to LITERT_HOST_MEMORY_BUFFER_ALIGNMENT);
 * `deallocator` may be NULL, the caller then frees it after destroying the buffer. */
LiteRtStatus LiteRtCreateTensorBufferFromHostMemory(
    const LiteRtRankedTensorType* tensor_type, void* host_buffer_addr,
    size_t host_buffer_size, LiteRtHostMemoryDeallocator deallocator,
    LiteRtTensorBuffer* buffer);
void LiteRtDestroyTensorBuffer(LiteRtTensorBuffer buffer);

#ifdef __cplusplus
}
#endif

#endif /* KIT_LITERT_C_API_H_ */
