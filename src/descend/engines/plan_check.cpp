// The per-step checks of a prepared param group (descend/batch.py), in one compiled pass.
//
// On a small model (hundreds of tensors) the Python version of these checks reads every
// parameter's gradient, its address, layout and dtype through torch's Python getters (15-20 us
// per pass over 300 tensors) and compares parameters, state dicts and buffers by identity: about
// 0.13 ms a step, more than a small model's whole update. Here the same checks cost a few
// nanoseconds per tensor. They are the Python ones, check for check: any failure returns false
// and the optimizer takes the Python path, which decides what to do.

#include <torch/extension.h>
#include <torch/csrc/autograd/python_variable.h>

namespace {

// Two lists hold the same objects in the same order.
bool same_objects(PyObject* a, PyObject* b) {
  if (!PyList_Check(a) || !PyList_Check(b)) return false;
  const Py_ssize_t n = PyList_GET_SIZE(a);
  if (PyList_GET_SIZE(b) != n) return false;
  for (Py_ssize_t i = 0; i < n; ++i) {
    if (PyList_GET_ITEM(a, i) != PyList_GET_ITEM(b, i)) return false;
  }
  return true;
}

// The optimizer's state (a dict) holds exactly `keys` -> `values`, in this order, by identity.
bool same_state(PyObject* state, PyObject* keys, PyObject* values) {
  if (!PyDict_Check(state) || !PyList_Check(keys) || !PyList_Check(values)) return false;
  const Py_ssize_t n = PyList_GET_SIZE(keys);
  if (PyDict_GET_SIZE(state) != n || PyList_GET_SIZE(values) != n) return false;
  Py_ssize_t position = 0, i = 0;
  PyObject *key, *value;
  while (PyDict_Next(state, &position, &key, &value)) {
    if (key != PyList_GET_ITEM(keys, i) || value != PyList_GET_ITEM(values, i)) return false;
    ++i;
  }
  return true;
}

// Every parameter's state dict still holds, under each name, the buffer the batch recorded.
// (Their addresses are not read: in a step that streams the model through the caches that would
// cost two cache misses per buffer, 8-15% of a small model's Adam step. State memory moved under
// the same tensor is announced instead: Optimizer.state_moved.)
bool same_buffers(PyObject* states, PyObject* names, PyObject* buffers) {
  if (!PyList_Check(states) || !PyTuple_Check(names) || !PyList_Check(buffers)) return false;
  const Py_ssize_t n = PyList_GET_SIZE(states);
  const Py_ssize_t columns = PyTuple_GET_SIZE(names);
  if (PyList_GET_SIZE(buffers) != columns) return false;
  for (Py_ssize_t c = 0; c < columns; ++c) {
    PyObject* name = PyTuple_GET_ITEM(names, c);
    PyObject* column = PyList_GET_ITEM(buffers, c);
    if (!PyList_Check(column) || PyList_GET_SIZE(column) != n) return false;
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* state = PyList_GET_ITEM(states, i);
      if (!PyDict_Check(state)) return false;
      PyObject* buffer = PyDict_GetItemWithError(state, name);  // borrowed
      if (buffer == nullptr) {
        PyErr_Clear();  // a buffer deleted by hand
        return false;
      }
      if (buffer != PyList_GET_ITEM(column, i)) return false;
    }
  }
  return true;
}

}  // namespace

// Whether this step of the group can run as the batch's one kernel call: the group's parameters,
// the optimizer's state, every state dict's buffers are the recorded objects; every parameter is
// at its recorded address (`param_addresses`, int64) and of the batch's dtype (`dtype_of`'s), and
// has a dense, contiguous CPU gradient of that dtype. The gradients' addresses are written into
// column 1 of the kernel's address table (int64, row-major, `columns` wide) as they are read; on
// false the caller rewrites that column.
bool check_group(py::object params, py::object recorded_params, py::object state,
                 py::object state_keys, py::object state_values, py::object states,
                 py::object names, py::object buffers, int64_t param_addresses, int64_t table,
                 int64_t columns, const at::Tensor& dtype_of) {
  PyObject* list = params.ptr();
  if (!same_objects(list, recorded_params.ptr())) return false;
  if (!same_state(state.ptr(), state_keys.ptr(), state_values.ptr())) return false;
  if (!same_buffers(states.ptr(), names.ptr(), buffers.ptr())) return false;
  const auto* expected = reinterpret_cast<const int64_t*>(param_addresses);
  auto* rows = reinterpret_cast<int64_t*>(table);
  const auto scalar_type = dtype_of.scalar_type();
  const Py_ssize_t n = PyList_GET_SIZE(list);
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* object = PyList_GET_ITEM(list, i);
    if (!THPVariable_Check(object)) return false;
    const at::Tensor& p = THPVariable_Unpack(object);
    if (reinterpret_cast<int64_t>(p.data_ptr()) != expected[i] ||
        p.scalar_type() != scalar_type) {
      return false;
    }
    const at::Tensor& g = p.grad();
    if (!g.defined() || g.layout() != at::kStrided || !g.is_cpu() ||
        g.scalar_type() != scalar_type || g.numel() != p.numel() || !g.is_contiguous()) {
      return false;
    }
    rows[i * columns + 1] = reinterpret_cast<int64_t>(g.data_ptr());
  }
  return true;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("check_group", &check_group, "The per-step checks of a prepared param group");
}
