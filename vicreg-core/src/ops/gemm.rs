//! A safe, bounds-checked wrapper around the `gemm` crate (the GEMM kernel
//! candle's own CPU matmul uses), plus the small float trait the custom ops
//! (here and in the `encoders` crate) are generic over.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout};

/// The element types the custom ops support (`f32` for training, `f64` for
/// finite-difference gradient checks).
pub trait Elem:
    Copy
    + Send
    + Sync
    + 'static
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::AddAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Converts (rounding for f32).
    fn from_f64(v: f64) -> Self;
    /// Converts exactly.
    fn to_f64(self) -> f64;
    /// Borrows the contiguous data of `s` under layout `l` as a slice of this type.
    fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [Self]>;
    /// Wraps a vector as candle CPU storage.
    fn storage(v: Vec<Self>) -> CpuStorage;
}

macro_rules! impl_elem {
    ($t:ty, $variant:ident) => {
        impl Elem for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn slice<'a>(
                s: &'a CpuStorage,
                l: &Layout,
                op: &str,
            ) -> candle_core::Result<&'a [Self]> {
                let CpuStorage::$variant(v) = s else {
                    candle_core::bail!("{op}: mixed dtypes ({:?})", s.dtype());
                };
                match l.contiguous_offsets() {
                    Some((a, b)) => Ok(&v[a..b]),
                    None => candle_core::bail!("{op}: input must be contiguous"),
                }
            }
            fn storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
        }
    };
}
impl_elem!(f32, F32);
impl_elem!(f64, F64);

/// A read-only strided matrix view: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    /// The elements.
    pub data: &'a [T],
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Step between rows.
    pub rs: usize,
    /// Step between columns.
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `rows x cols` matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transposed view (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn check(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m x n, row-major) = [dst +] lhs (m x k) @ rhs (k x n)`, multithreaded
/// on the current rayon pool when `parallel`. Panics only on internal shape
/// bugs (the callers size every buffer).
pub fn matmul<T: Elem>(
    dst: &mut [T],
    accumulate: bool,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    parallel: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "matmul: inner dimensions differ");
    assert!(dst.len() >= m * n, "matmul: destination too small");
    assert!(lhs.check() && rhs.check(), "matmul: operand out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::ZERO);
        }
        return;
    }
    let par = if parallel && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: all three operands were bounds-checked above for the strides
    // given; dst is exclusively borrowed and does not alias lhs/rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_naive_with_transposes_and_accumulation() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.11).cos()).collect();
        // b stored as (n x k), used transposed.
        let mut d = vec![1.0; m * n];
        matmul(
            &mut d,
            true,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, n, k).t(),
            false,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f64 = 1.0 + (0..k).map(|p| a[i * k + p] * b[j * k + p]).sum::<f64>();
                assert!((d[i * n + j] - want).abs() < 1e-12);
            }
        }
    }
}
