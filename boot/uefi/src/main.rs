//! The UEFI stub (being written).
#![no_std]
#![no_main]

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[no_mangle]
extern "efiapi" fn efi_main(_image: *mut core::ffi::c_void, _st: *mut core::ffi::c_void) -> usize {
    1
}
