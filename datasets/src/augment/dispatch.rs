//! Runtime CPU dispatch for the hot integer loops: the same Rust code compiled
//! a second time with AVX2 enabled (8 x i32 lanes instead of SSE2's 4, and a
//! native 32-bit multiply), used when the CPU has it. Results are identical:
//! only integer arithmetic is involved.

/// `avx2_dispatch!(pub(crate) fn name(a: A, b: B) -> R => generic);` defines
/// `name`, which calls `generic` (an `#[inline(always)]` function) through an
/// AVX2-compiled copy when `is_x86_feature_detected!("avx2")`, else directly.
macro_rules! avx2_dispatch {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2 (checked on the line above), the
                    // only requirement of calling a `target_feature(enable = "avx2")` fn.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

pub(crate) use avx2_dispatch;
