"""Reading a site's variables by identity, and putting them into a shared graph.

A site that shares a loaded graph (see :mod:`models.site.architecture_key`) keeps
only its variable values, as NumPy arrays in the signature's capture order.
They are read from the site's own checkpoint by identity: the SavedModel's
object graph says which node each capture is bound to, and the checkpoint's
object graph (same node numbering) gives that node's full variable name and
checkpoint key. The name is checked, so a checkpoint key that names another
variable in this export (Keras 3 numbers its variable lists per export) is
never used by position.
"""
import os
from typing import Any, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from models.site.architecture_key import Architecture
from models.site.architecture_key import NotShareable

OBJECT_GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'
VARIABLE_VALUE = 'VARIABLE_VALUE'

Weights = Tuple[np.ndarray, ...]


def checkpoint_prefix(model_dir: str) -> str:
  return os.path.join(model_dir, 'variables', 'variables')


def read_weights(model_dir: str, architecture: Architecture) -> Weights:
  """This SavedModel's values of the architecture's captured variables, in capture order.

  Raises:
    NotShareable: the checkpoint is missing, unreadable, or does not hold
      the named variable with the expected dtype and shape at that node.
  """
  try:
    # The reader itself (``tf.train.load_checkpoint`` first checks for a
    # directory, a millisecond on a busy disk).
    reader = tf.compat.v1.train.NewCheckpointReader(checkpoint_prefix(model_dir))
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
        reader.get_tensor(OBJECT_GRAPH_KEY))
  except Exception as e:  # pylint: disable=broad-except
    raise NotShareable(f'cannot read the variables checkpoint: {e}') from e
  values = []
  for variable in architecture.variables:
    if variable.node_id >= len(graph.nodes):
      raise NotShareable(f'checkpoint has no node {variable.node_id}')
    attributes = [a for a in graph.nodes[variable.node_id].attributes
                  if a.name == VARIABLE_VALUE]
    if len(attributes) != 1 or attributes[0].full_name != variable.name:
      found = attributes[0].full_name if attributes else 'nothing'
      raise NotShareable(
          f'checkpoint node {variable.node_id} holds {found!r}, not {variable.name!r}')
    try:
      value = reader.get_tensor(attributes[0].checkpoint_key)
    except Exception as e:  # pylint: disable=broad-except
      raise NotShareable(f'cannot read {variable.name!r}: {e}') from e
    value = np.asarray(value)
    want = tf.dtypes.as_dtype(variable.dtype).as_numpy_dtype
    if value.dtype != want or value.shape != variable.shape:
      raise NotShareable(
          f'{variable.name!r} is {value.dtype}{list(value.shape)} in the checkpoint, '
          f'expected {np.dtype(want)}{list(variable.shape)}')
    value.setflags(write=False)
    values.append(value)
  return tuple(values)


def bound_variables(signature: Any, architecture: Architecture) -> Tuple[tf.Variable, ...]:
  """The loaded signature's variables, checked against the architecture.

  TF's loader binds a concrete function's captures in the order of its
  ``bound_inputs``, the order of ``architecture.variables``; each one is
  checked by name, dtype, shape and captured handle anyway.

  Raises:
    NotShareable: the loaded signature does not capture exactly those variables.
  """
  variables = tuple(signature.variables)
  captured = tuple(signature.captured_inputs)
  if len(variables) != len(architecture.variables):
    raise NotShareable(
        f'loaded signature captures {len(variables)} variables, '
        f'expected {len(architecture.variables)}')
  for variable, want in zip(variables, architecture.variables):
    name = variable.name[:-2] if variable.name.endswith(':0') else variable.name
    if (name != want.name or variable.dtype.as_datatype_enum != want.dtype
        or tuple(variable.shape.as_list()) != want.shape
        or want.position >= len(captured) or captured[want.position] is not variable.handle):
      raise NotShareable(f'loaded variable {variable.name} does not match {want.name!r}')
  return variables


def assign(variables: Sequence[tf.Variable], weights: Weights) -> None:
  """Puts ``weights`` into ``variables`` (dtypes and shapes already checked).

  One ``AssignVariableOp`` each: about 50 us for a small array, where
  ``Variable.assign`` takes about 300 us.
  """
  for variable, value in zip(variables, weights):
    tf.raw_ops.AssignVariableOp(resource=variable.handle, value=value)


def weights_bytes(weights: Weights) -> int:
  return int(sum(w.nbytes for w in weights))
