"""Eight-lane vector kernels for the k-NN search, written as numba intrinsics in LLVM IR.

numba's auto-vectoriser does not vectorise the two loops that dominate the neighbour search:
appending the candidates that pass a distance test (a compaction) and ranking a few dozen
distances. These intrinsics spell them out with LLVM's portable vector operations
(``llvm.masked.compressstore``, ``<8 x double>`` compares, ``llvm.sqrt``). LLVM lowers them to
AVX-512 instructions (``vcompresspd``) where the CPU has them and to correct scalar or
narrower-vector code everywhere else (AVX2, NEON, ...); the results are the same on every target.

Arithmetic is plain IEEE float64 ``fsub``/``fmul``/``fadd`` without fast-math flags, so no fused
multiply-adds are formed and squared distances are bit-identical to ``dx*dx + dy*dy + dz*dz``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Lanes per vector.
LANES = 8

_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_VF = ir.VectorType(_F64, LANES)
_VI32 = ir.VectorType(_I32, LANES)
_VI64 = ir.VectorType(_I64, LANES)
_MASK = ir.VectorType(ir.IntType(1), LANES)


def _intrinsic(func: Callable[..., Any]) -> Callable[..., Any]:
    """numba's ``@intrinsic``, typed as jitted code calls the result: without the ``typingctx`` argument."""
    return intrinsic(func)


def _splat(builder: ir.IRBuilder, value: ir.Value, vtype: ir.VectorType) -> ir.Value:
    one = builder.insert_element(ir.Constant(vtype, ir.Undefined), value, ir.Constant(_I32, 0))
    zeros = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
    return builder.shuffle_vector(one, ir.Constant(vtype, ir.Undefined), zeros)


def _function(builder: ir.IRBuilder, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    existing = builder.module.globals.get(name)
    return existing if existing is not None else ir.Function(builder.module, ir.FunctionType(ret, args), name=name)


def _data(context, builder: ir.IRBuilder, array_type, array_value) -> ir.Value:
    """Pointer to the first element of a numba array argument."""
    return context.make_array(array_type)(context, builder, array_value).data


def _load8(builder: ir.IRBuilder, data: ir.Value, index: ir.Value) -> ir.Value:
    """The 8 doubles at ``data[index:index + 8]`` (unaligned)."""
    return builder.load(builder.bitcast(builder.gep(data, [index]), _VF.as_pointer()), align=8)


@_intrinsic
def scan8(typingctx, xs, ys, zs, t, m, qx, qy, qz, tau, d, n):
    """Append to ``d[n:]`` the squared distances ``<= tau`` from ``q`` to points ``t .. t+min(m, 8)-1``.

    Returns the new length ``n``. Reads 8 entries from ``xs/ys/zs[t:]`` whatever ``m`` is (lanes
    ``>= m`` are masked out), so the coordinate arrays need 8 readable entries past their last
    point; ``d`` only receives the passing lanes.
    """
    sig = types.int64(xs, ys, zs, t, m, qx, qy, qz, tau, d, n)

    def codegen(context, builder, signature, args):
        x_a, y_a, z_a, t_v, m_v, qx_v, qy_v, qz_v, tau_v, d_a, n_v = args
        total = None
        for k, (arr, q) in enumerate(((x_a, qx_v), (y_a, qy_v), (z_a, qz_v))):
            loaded = _load8(builder, _data(context, builder, signature.args[k], arr), t_v)
            diff = builder.fsub(loaded, _splat(builder, q, _VF))
            square = builder.fmul(diff, diff)
            total = square if total is None else builder.fadd(total, square)
        passing = builder.fcmp_ordered("<=", total, _splat(builder, tau_v, _VF))
        valid = builder.icmp_signed("<", ir.Constant(_VI64, list(range(LANES))), _splat(builder, m_v, _VI64))
        mask = builder.and_(passing, valid)
        d_data = _data(context, builder, signature.args[9], d_a)
        store = _function(builder, "llvm.masked.compressstore.v8f64", ir.VoidType(), [_VF, _F64.as_pointer(), _MASK])
        builder.call(store, [total, builder.gep(d_data, [n_v]), mask])
        popcount = _function(builder, "llvm.ctpop.i8", ir.IntType(8), [ir.IntType(8)])
        count = builder.call(popcount, [builder.bitcast(mask, ir.IntType(8))])
        return builder.add(n_v, builder.zext(count, _I64))

    return sig, codegen


@_intrinsic
def select_small(typingctx, d, n, k):
    """``(k-th smallest, sum of sqrt of the k smallest)`` of ``d[:n]``, for ``k <= n``.

    ``d[n:]`` must hold ``+inf`` up to the next multiple of 8. Each value is ranked by counting
    the values strictly below it (``n * ceil(n/8)`` vector compares, meant for ``n`` up to ~64);
    the k-th smallest is the largest value of rank ``< k``. Ties at the k-th value are exact:
    the sum is that of the values below it plus ``(k - count below) * sqrt(k-th)``.
    """
    sig = types.UniTuple(types.float64, 2)(d, n, k)

    def codegen(context, builder, signature, args):
        d_a, n_v, k_v = args
        data = _data(context, builder, signature.args[0], d_a)
        blocks = builder.ashr(builder.add(n_v, ir.Constant(_I64, LANES - 1)), ir.Constant(_I64, 3))
        k32 = builder.trunc(k_v, _I32)
        zeros_f = ir.Constant(_VF, [0.0] * LANES)
        zeros_i = ir.Constant(_VI32, [0] * LANES)
        maxnum = _function(builder, "llvm.maxnum.v8f64", _VF, [_VF, _VF])

        def block(index):
            return _load8(builder, data, builder.mul(index, ir.Constant(_I64, LANES)))

        kth_acc = cgutils.alloca_once_value(builder, zeros_f)
        rank_acc = cgutils.alloca_once(builder, _VI32)
        with cgutils.for_range(builder, blocks) as outer:
            values = block(outer.index)
            builder.store(zeros_i, rank_acc)
            with cgutils.for_range(builder, n_v) as inner:
                other = _splat(builder, builder.load(builder.gep(data, [inner.index])), _VF)
                below = builder.zext(builder.fcmp_ordered("<", other, values), _VI32)
                builder.store(builder.add(builder.load(rank_acc), below), rank_acc)
            selected = builder.icmp_signed("<", builder.load(rank_acc), _splat(builder, k32, _VI32))
            current = builder.load(kth_acc)
            builder.store(builder.select(selected, builder.call(maxnum, [current, values]), current), kth_acc)
        reduce_max = _function(builder, "llvm.vector.reduce.fmax.v8f64", _F64, [_VF])
        kth = builder.call(reduce_max, [builder.load(kth_acc)])
        kth_v = _splat(builder, kth, _VF)

        sqrt_v = _function(builder, "llvm.sqrt.v8f64", _VF, [_VF])
        sum_acc = cgutils.alloca_once_value(builder, zeros_f)
        count_acc = cgutils.alloca_once_value(builder, zeros_i)
        with cgutils.for_range(builder, blocks) as loop:
            values = block(loop.index)
            below = builder.fcmp_ordered("<", values, kth_v)
            roots = builder.select(below, builder.call(sqrt_v, [values]), zeros_f)
            builder.store(builder.fadd(builder.load(sum_acc), roots), sum_acc)
            builder.store(builder.add(builder.load(count_acc), builder.zext(below, _VI32)), count_acc)
        reduce_add = _function(builder, "llvm.vector.reduce.fadd.v8f64", _F64, [_F64, _VF])
        total = builder.call(reduce_add, [ir.Constant(_F64, 0.0), builder.load(sum_acc)])
        reduce_count = _function(builder, "llvm.vector.reduce.add.v8i32", _I32, [_VI32])
        rest = builder.sitofp(builder.sub(k32, builder.call(reduce_count, [builder.load(count_acc)])), _F64)
        sqrt_s = _function(builder, "llvm.sqrt.f64", _F64, [_F64])
        total = builder.fadd(total, builder.fmul(rest, builder.call(sqrt_s, [kth])))
        return context.make_tuple(builder, signature.return_type, [kth, total])

    return sig, codegen


@_intrinsic
def split8(typingctx, src, t, m, threshold, low, n_low, high, n_high):
    """Append lanes ``t .. t+min(m, 8)-1`` of ``src`` to ``low`` (values ``<= threshold``) or
    ``high`` (the others), each in order; returns the new ``(n_low, n_high)``.

    ``high`` may be ``src`` itself (in-place compaction): writes never pass the lanes read.
    """
    sig = types.UniTuple(types.int64, 2)(src, t, m, threshold, low, n_low, high, n_high)

    def codegen(context, builder, signature, args):
        src_a, t_v, m_v, thr_v, low_a, nl_v, high_a, nh_v = args
        values = _load8(builder, _data(context, builder, signature.args[0], src_a), t_v)
        valid = builder.icmp_signed("<", ir.Constant(_VI64, list(range(LANES))), _splat(builder, m_v, _VI64))
        below = builder.fcmp_ordered("<=", values, _splat(builder, thr_v, _VF))
        masks = (builder.and_(below, valid), builder.and_(builder.not_(below), valid))
        store = _function(builder, "llvm.masked.compressstore.v8f64", ir.VoidType(), [_VF, _F64.as_pointer(), _MASK])
        popcount = _function(builder, "llvm.ctpop.i8", ir.IntType(8), [ir.IntType(8)])
        counts = []
        outputs = zip(masks, (low_a, high_a), (signature.args[4], signature.args[6]), (nl_v, nh_v))
        for mask, arr, arr_t, count in outputs:
            data = _data(context, builder, arr_t, arr)
            builder.call(store, [values, builder.gep(data, [count]), mask])
            added = builder.zext(builder.call(popcount, [builder.bitcast(mask, ir.IntType(8))]), _I64)
            counts.append(builder.add(count, added))
        return context.make_tuple(builder, signature.return_type, counts)

    return sig, codegen
