"""Reading a site's variables by identity, and binding them to a shared graph by role.

A site that shares a graph (see :mod:`models.site.shared_graphs`) keeps only its
variable values, as NumPy arrays. They are read from the site's own
checkpoint by identity: the SavedModel's object graph says which node each
capture is bound to, and the checkpoint's object graph (same node numbering)
gives that node's full variable name and checkpoint key. The name is
checked, so a checkpoint key that names another variable in this export
(Keras 3 numbers its variable lists per export) is never used by position.
Values are then bound to the shared graph's variables by structural role
(:mod:`models.site.architecture_key`), never by name or position.
"""
import os
from typing import Any, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2
from tensorflow.python.training import py_checkpoint_reader
from tensorflow.python.ops import gen_resource_variable_ops

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
    reader = py_checkpoint_reader.NewCheckpointReader(checkpoint_prefix(model_dir))
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(
        reader.get_tensor(OBJECT_GRAPH_KEY))
  except Exception as e:  # pylint: disable=broad-except
    raise NotShareable(f'cannot read the variables checkpoint: {e}') from e
  values = []
  nodes = graph.nodes
  numpy_dtypes = {}
  for variable in architecture.variables:
    if variable.node_id >= len(nodes):
      raise NotShareable(f'checkpoint has no node {variable.node_id}')
    attributes = [a for a in nodes[variable.node_id].attributes if a.name == VARIABLE_VALUE]
    if len(attributes) != 1 or attributes[0].full_name != variable.name:
      found = attributes[0].full_name if attributes else 'nothing'
      raise NotShareable(
          f'checkpoint node {variable.node_id} holds {found!r}, not {variable.name!r}')
    try:
      value = reader.get_tensor(attributes[0].checkpoint_key)
    except Exception as e:  # pylint: disable=broad-except
      raise NotShareable(f'cannot read {variable.name!r}: {e}') from e
    value = np.asarray(value)
    want = numpy_dtypes.get(variable.dtype)
    if want is None:
      want = numpy_dtypes[variable.dtype] = tf.dtypes.as_dtype(variable.dtype).as_numpy_dtype
    if value.dtype != want or value.shape != variable.shape:
      raise NotShareable(
          f'{variable.name!r} is {value.dtype}{list(value.shape)} in the checkpoint, '
          f'expected {np.dtype(want)}{list(variable.shape)}')
    value.setflags(write=False)
    values.append(value)
  return tuple(values)


def by_roles(architecture: Architecture, weights: Weights, roles: Sequence[str]) -> Weights:
  """``weights`` (in ``architecture``'s capture order) reordered to the capture order of ``roles``.

  Raises:
    NotShareable: the roles are not exactly the architecture's.
  """
  by_role = {v.role: w for v, w in zip(architecture.variables, weights)}
  if len(by_role) != len(roles) or any(role not in by_role for role in roles):
    raise NotShareable('the variables do not have the shared graph\'s roles')
  return tuple(by_role[role] for role in roles)


def assign(handles: Sequence[Any], weights: Weights) -> None:
  """Puts ``weights`` into the variables behind ``handles`` (dtypes and shapes already checked).

  One ``AssignVariableOp`` each, called through its generated wrapper:
  about 30 us for a small array, where ``Variable.assign`` takes about 300 us.
  """
  for handle, value in zip(handles, weights):
    gen_resource_variable_ops.assign_variable_op(handle, value)


def weights_bytes(weights: Weights) -> int:
  return int(sum(w.nbytes for w in weights))
