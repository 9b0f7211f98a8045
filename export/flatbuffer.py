"""Reading a .tflite flatbuffer: which ops it holds and in which types they compute.

Reads the file with the flatbuffer schema that ai-edge-litert ships; no TensorFlow.
"""

def model_ops(content):
    """The set of op names in a .tflite flatbuffer, read from the file itself: builtin
    ops by their `BuiltinOperator` name (e.g. "FULLY_CONNECTED"), custom ops (Flex ops
    among them) by their custom code (e.g. "FlexStridedSlice")."""
    from ai_edge_litert import schema_py_generated as schema

    return set(op_names(schema.Model.GetRootAs(content, 0)))


def op_names(model):
    """The op name of each operator code of a `schema.Model`, by opcode index."""
    from ai_edge_litert import schema_py_generated as schema

    names = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    ops = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            ops.append(code.CustomCode().decode("utf-8"))
        else:
            ops.append(names.get(builtin, f"BUILTIN_{builtin}"))
    return ops


def op_tensor_types(content):
    """How each op type computes in a .tflite file, over all its signatures:
    {op name: {"(int8,int8) -> (int8)": number of such ops}}, the types of each op's
    input and output tensors (absent optional inputs left out)."""
    from ai_edge_litert import schema_py_generated as schema

    type_names = {value: name.lower() for name, value in vars(schema.TensorType).items()
                  if not name.startswith("_")}
    model = schema.Model.GetRootAs(content, 0)
    names = op_names(model)
    found = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)

            def types(indices, graph=graph):
                return ",".join(type_names[graph.Tensors(i).Type()] for i in indices if i >= 0)

            key = (f"({types(op.Inputs(j) for j in range(op.InputsLength()))}) -> "
                   f"({types(op.Outputs(j) for j in range(op.OutputsLength()))})")
            counts = found.setdefault(names[op.OpcodeIndex()], {})
            counts[key] = counts.get(key, 0) + 1
    return {name: dict(sorted(counts.items())) for name, counts in sorted(found.items())}


def float_ops(content):
    """The ops of `op_tensor_types` that read or write a float32 tensor, QUANTIZE and
    DEQUANTIZE (the conversions between float32 and int8) left out."""
    return {name: {key: n for key, n in counts.items() if "float32" in key}
            for name, counts in op_tensor_types(content).items()
            if name not in ("QUANTIZE", "DEQUANTIZE")
            and any("float32" in key for key in counts)}


