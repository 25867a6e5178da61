//! The boot banner on the linear framebuffer (8x8 bitmap font, scaled).

use zen_abi::boot::{BootInfo, PixelFormat};

const BACKGROUND: u32 = 0x1a1b26;
const TITLE: u32 = 0xe0def4;
const TEXT: u32 = 0x9ccfd8;

struct Canvas<'a> {
    px: &'a mut [u32],
    width: usize,
    height: usize,
    stride: usize,
    bgr: bool,
}

impl Canvas<'_> {
    fn color(&self, rgb: u32) -> u32 {
        if self.bgr {
            rgb // 0x00RRGGBB in memory is B, G, R, 0
        } else {
            (rgb & 0x00ff00) | (rgb >> 16 & 0xff) | (rgb & 0xff) << 16
        }
    }

    fn clear(&mut self, rgb: u32) {
        let c = self.color(rgb);
        crate::arch::phys::fill_pixels(self.px, c);
    }

    fn text(&mut self, x: usize, y: usize, scale: usize, rgb: u32, s: &str) {
        let c = self.color(rgb);
        for (i, ch) in s.bytes().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY[(ch & 0x7f) as usize];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) == 0 {
                        continue;
                    }
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let px = x + (i * 8 + col) * scale + dx;
                            let py = y + row * scale + dy;
                            if px < self.width && py < self.height {
                                self.px[py * self.stride + px] = c;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Clears the screen and draws the banner; does nothing without a framebuffer.
pub fn banner(boot: &BootInfo, firmware: &str) {
    let fb = boot.framebuffer;
    let Some(px) = crate::arch::phys::claim_framebuffer(&fb) else {
        crate::kprintln!("zen: no linear framebuffer");
        return;
    };
    let mut canvas = Canvas {
        px,
        width: fb.width as usize,
        height: fb.height as usize,
        stride: fb.stride as usize,
        bgr: fb.format == PixelFormat::Bgr as u32,
    };
    canvas.clear(BACKGROUND);
    canvas.text(32, 32, 6, TITLE, "Zen OS");
    let mut line = heapless_line();
    line.push_str("capability microkernel - booted by ");
    line.push_str(firmware);
    canvas.text(32, 32 + 6 * 8 + 24, 2, TEXT, &line);
    crate::kprintln!("zen: framebuffer {}x{}, banner drawn", fb.width, fb.height);
}

fn heapless_line() -> alloc::string::String {
    alloc::string::String::with_capacity(64)
}
