"""Binding values instead of variables: the rewrite keeps every op but the reads."""
import numpy as np
from tensorflow.core.framework import types_pb2

from models.site import architecture_key
from models.site import value_binding
from models.site.shared_graphs import SharedGraph
from models.site import variable_restore
import savedmodel_builders as builders


def ops_of(functions):
  return sorted(n.op for f in functions for n in f.node_def
                if not n.op.startswith(('__site_fn_', '__site_fv_')))


def test_reads_become_identities_and_nothing_else_changes(tmp_path):
  path = builders.export_keras(str(tmp_path / 'k'), 1)
  arch = architecture_key.read_architecture(path, 'serving_default')
  values = value_binding.value_program(arch.program, arch.variables)
  assert values is not None and values.function_name != arch.program.function_name
  before, after = ops_of(arch.program.functions), ops_of(values.functions)
  reads = before.count('ReadVariableOp')
  assert reads == 4 and 'ReadVariableOp' not in after
  assert after.count('Identity') == before.count('Identity') + reads
  assert [op for op in after
          if op != 'Identity'] == [op for op in before if op not in ('Identity', 'ReadVariableOp')]
  root = next(f for f in values.functions if f.signature.name == values.function_name)
  num_inputs = len(root.signature.input_arg) - arch.program.num_captures
  for variable in arch.variables:
    assert root.signature.input_arg[num_inputs + variable.position].type == types_pb2.DT_FLOAT
  assert not any(a.type == types_pb2.DT_RESOURCE for f in values.functions
                 for a in f.signature.input_arg)


def test_a_variable_used_beyond_reads_keeps_the_variables(tmp_path):
  path = builders.save_embedding(str(tmp_path / 'e'), 1)
  arch = architecture_key.read_architecture(path, 'serving_default')
  assert value_binding.value_program(arch.program, arch.variables) is None
  graph = SharedGraph(arch, variable_restore.read_weights(path, arch), bind_values=True)
  assert not graph.binds_values
  ids = np.asarray([4, 0, 2], np.int64)
  got = graph.bind(variable_restore.read_weights(path, arch))(ids=ids)['v'].numpy()
  assert np.array_equal(got, builders.full_load_outputs(path, [{'ids': i} for i in ids])['v'])


def test_a_plain_read_program_binds_values_only_when_asked(tmp_path):
  path = builders.export_keras(str(tmp_path / 'k'), 1)
  arch = architecture_key.read_architecture(path, 'serving_default')
  weights = variable_restore.read_weights(path, arch)
  assert SharedGraph(arch, weights, bind_values=True).binds_values
  assert not SharedGraph(arch, weights).binds_values
