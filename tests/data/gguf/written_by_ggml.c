// How written_by_ggml.gguf was made: ggml's own GGUF writer (ggml-org/ggml, snapshot of
// 2026-08-21, built as ggml-base), every metadata type, an F32 [5 x 3] and an MXFP4 [64]
// tensor. Build: gcc -I<ggml>/include written_by_ggml.c -L<ggml build>/src -lggml-base -lm
#include "ggml.h"
#include "gguf.h"
#include <stdio.h>
#include <string.h>
int main(int argc, char** argv) {
  struct gguf_context* g = gguf_init_empty();
  gguf_set_val_u8(g, "u8", 200); gguf_set_val_i8(g, "i8", -5); gguf_set_val_u16(g, "u16", 60000); gguf_set_val_i16(g, "i16", -3);
  gguf_set_val_u32(g, "u32", 7); gguf_set_val_i32(g, "i32", -7); gguf_set_val_f32(g, "f32", 0.25f); gguf_set_val_bool(g, "bool", 1);
  gguf_set_val_str(g, "str", "hello"); gguf_set_val_u64(g, "u64", 1ull << 40); gguf_set_val_i64(g, "i64", -1); gguf_set_val_f64(g, "f64", 1e300);
  int arr[3] = {1, 2, 3}; gguf_set_arr_data(g, "arr", GGUF_TYPE_INT32, arr, 3);
  const char* strs[2] = {"a", "bc"}; gguf_set_arr_str(g, "strs", strs, 2);
  struct ggml_init_params p = { 16 * 1024 * 1024, NULL, 0 };
  struct ggml_context* ctx = ggml_init(p);
  struct ggml_tensor* a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 5, 3); ggml_set_name(a, "a");
  for (int i = 0; i < 15; ++i) ((float*)a->data)[i] = i * 0.5f;
  struct ggml_tensor* b = ggml_new_tensor_1d(ctx, GGML_TYPE_MXFP4, 64); ggml_set_name(b, "b");
  memset(b->data, 0x11, ggml_nbytes(b));
  gguf_add_tensor(g, a); gguf_add_tensor(g, b);
  gguf_write_to_file(g, argv[1], 0);
  return 0;
}
