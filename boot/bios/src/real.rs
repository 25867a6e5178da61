//! The 16-bit part of the stub: the MBR and the second stage up to long mode.
//!
//! The MBR (section `.mbr`, 0x7C00) loads the second stage from the sector range its
//! disk address packet names (patched by the image writer) to 0x7E00 and jumps there.
//! The second stage (section `.stage2`): COM1, A20, the E820 map, `zenos.bin` from the
//! LBA range in the parameter sector (its length checked against the E820 map first) (through a bounce buffer under 1 MiB, copied up
//! to FILE_BASE in unreal mode), a VBE mode, then straight from real mode into long
//! mode (PE and PG set together) with the first GiB identity mapped, and `stage3` in
//! Rust. The VBE mode is set last so that disk errors still show on the text screen.
//!
//! Fixed low memory (all free once the kernel runs; it moves to its own stack and
//! tables): 0x1000..0x4000 early page tables, 0x4000 E820 buffer (128 entries),
//! 0x5000 VBE controller info, 0x5200 VBE mode info, stack under 0x7C00 (real mode)
//! and under 0x80000 (long mode), 0x10000..0x18000 disk bounce buffer.

pub const E820_BUF: u64 = 0x4000;
pub const E820_MAX: usize = 128;
pub const VBE_MODE_INFO: u64 = 0x5200;
pub const LONG_STACK_TOP: u64 = 0x80000;

extern "C" {
    /// TSC at the MBR's first instructions.
    pub static start_tsc: u64;
    /// Number of entries at E820_BUF.
    pub static e820_count: u16;
    /// 1 if a VBE mode was set (its info is at VBE_MODE_INFO), else text mode.
    pub static vbe_ok: u8;
    /// The parameter sector, loaded right after the second stage.
    pub static __stage2_end: [u8; 512];
}

core::arch::global_asm!(
    r#"
    .section .mbr, "ax"
    .code16
    .global mbr_start
mbr_start:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw $0x7c00, %sp
    ljmp $0, $1f                /* some BIOSes enter at 07C0:0000 */
1:  sti
    cld
    movb %dl, boot_drive        /* before rdtsc, which overwrites %edx */
    rdtsc
    movl %eax, start_tsc
    movl %edx, start_tsc + 4
    movb boot_drive, %dl
    movw $mbr_dap, %si
    movb $0x42, %ah
    int $0x13
    jc disk_error
    jmp stage2_start

disk_error:
    movw $msg_disk, %si
fail16:
    call print16
halt16:
    cli
    hlt
    jmp halt16

/* Prints the NUL-terminated string at %si on COM1 and the screen. */
print16:
    lodsb
    testb %al, %al
    jz 2f
    movw $0x3f8, %dx
    outb %al, %dx
    movb $0x0e, %ah
    movw $7, %bx
    int $0x10
    jmp print16
2:  ret

msg_disk: .asciz "zen-boot: disk read failed\r\n"
    .balign 8
    .global start_tsc
start_tsc: .quad 0
boot_drive: .byte 0

    /* The disk address packet of the second stage: the image writer fills in the
       sector count (offset 426) and the LBA (offset 432). */
    .org 424
mbr_dap:
    .byte 0x10, 0
    .word 0
    .word 0x7e00, 0
    .quad 0
    .org 510
    .word 0xaa55

    .section .stage2, "ax"
stage2_start:
    /* COM1: 115200 baud, 8N1, FIFOs on, so that real-mode errors reach it too. */
    movw $com1_init, %si
    movb $0x03, %dh
1:  lodsw                       /* %al: port (low byte), %ah: value */
    movb %al, %dl
    movb %ah, %al
    outb %al, %dx
    cmpw $com1_init + 14, %si
    jne 1b

    /* A20 through the BIOS, else the fast A20 gate (bit 0 of port 0x92 is a reset). */
    movw $0x2401, %ax
    int $0x15
    jnc 1f
    inb $0x92, %al
    orb $2, %al
    andb $0xfe, %al
    outb %al, $0x92
1:

    /* E820, into E820_BUF; attr is preset to 1 for BIOSes that return 20 bytes. */
    xorl %ebx, %ebx
    movw ${e820_buf}, %di
    xorw %bp, %bp
1:  movl $1, 20(%di)
    movl $0xe820, %eax
    movl $24, %ecx
    movl $0x534d4150, %edx
    int $0x15
    jc 2f
    cmpl $0x534d4150, %eax
    jne 2f
    addw $24, %di
    incw %bp
    cmpw ${e820_max}, %bp
    jae 2f
    testl %ebx, %ebx
    jnz 1b
2:  movw %bp, e820_count

    /* The parameter sector is not signed, and the load below writes wherever its
       length says: so first, without the magic, load nothing (stage3 then says there
       are no parameters); and the length must fit in one usable E820 entry from
       FILE_BASE, and under EARLY_MAP_END, which stage3 reads it through (what
       `file_fits` checks again there). The LBA needs no check: any value only selects
       which sectors are read, the BIOS refuses sectors past the end of the disk, and
       stage3 checks what it read (`zen_image::verify`). */
    cmpl $0x504e455a, __stage2_end      /* "ZENP" */
    jne load_done
    cmpl $0x4d415241, __stage2_end + 4  /* "ARAM" */
    jne load_done
    cmpl $0, __stage2_end + 20          /* the length's high half */
    jne too_big
    movl __stage2_end + 16, %eax
    cmpl ${max_len}, %eax               /* a multiple of 512: no overflow below */
    ja too_big
    addl $511, %eax
    shrl $9, %eax
    movl %eax, load_left
    shll $9, %eax
    addl ${file_base}, %eax             /* %eax: end of the load */
    movw ${e820_buf}, %di
    movw e820_count, %cx
    testw %cx, %cx
    jz load_done                        /* no map: stage3 says so */
1:  cmpl $1, 16(%di)                    /* usable */
    jne 2f
    testb $1, 20(%di)                   /* not to be ignored */
    jz 2f
    cmpl $0, 4(%di)                     /* base under 4 GiB ... */
    jne 2f
    movl (%di), %edx
    cmpl ${file_base}, %edx             /* ... and at most FILE_BASE */
    ja 2f
    cmpl $0, 12(%di)                    /* 4 GiB or more long: reaches past %eax */
    jne 3f
    addl 8(%di), %edx
    jc 3f
    cmpl %eax, %edx
    jae 3f
2:  addw $24, %di
    loop 1b
too_big:
    movw $msg_too_big, %si
    jmp fail16
3:

    /* zenos.bin: 64 sectors at a time into 0x10000, then up to FILE_BASE. */
    movl __stage2_end + 8, %eax
    movl %eax, load_lba
    movl __stage2_end + 12, %eax
    movl %eax, load_lba + 4
load_next:
    movl load_left, %eax
    testl %eax, %eax
    jz load_done
    movw $64, %cx
    cmpl $64, %eax
    jae 1f
    movw %ax, %cx
1:  movw %cx, load_count
    movw $load_dap, %si
    movb boot_drive, %dl
    movb $0x42, %ah
    int $0x13
    jc disk_error
    call unreal
    movzwl load_count, %ecx
    subl %ecx, load_left
    addl %ecx, load_lba
    adcl $0, load_lba + 4
    shll $7, %ecx
    movl $0x10000, %esi
    movl load_dest, %edi
    .byte 0x67                  /* addr32: %esi/%edi, through the 4 GiB limits */
    rep movsl
    movl %edi, load_dest
    jmp load_next
load_done:

    /* VBE: the first 1024x768, 32 bpp direct-colour mode with a linear framebuffer. */
    movw $0x5000, %di
    movl $0x32454256, (%di)     /* "VBE2": ask for VBE 2.0+ information */
    movw $0x4f00, %ax
    int $0x10
    cmpw $0x004f, %ax
    jne vbe_done
    lfsw 0x500e, %si            /* the mode list (far pointer at offset 14) */
vbe_next:
    movw %fs:(%si), %cx
    addw $2, %si
    cmpw $0xffff, %cx
    je vbe_done
    movw ${vbe_mode}, %di
    movw $0x4f01, %ax
    int $0x10
    cmpw $0x004f, %ax
    jne vbe_next
    cmpl $0x03000400, 18(%di)   /* width 1024, height 768 */
    jne vbe_next
    cmpb $32, 25(%di)
    jne vbe_next
    cmpb $6, 27(%di)            /* direct colour */
    jne vbe_next
    testb $0x80, (%di)          /* linear framebuffer */
    jz vbe_next
    movw %cx, %bx
    orw $0x4000, %bx
    movw $0x4f02, %ax
    int $0x10
    cmpw $0x004f, %ax
    jne vbe_done
    movb $1, vbe_ok
vbe_done:

    /* Long mode. Early tables: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000, 2 MiB pages
       identity-mapping the first GiB, where everything the stub touches lies. */
    cli
    xorl %eax, %eax
    movw $0x1000, %di
    movw $0xc00, %cx
    rep stosl
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    movl $0x83, %eax
    movw $0x3000, %di
    movw $512, %cx
1:  movl %eax, (%di)
    addl $0x200000, %eax
    addw $8, %di
    loop 1b
    movl $0x620, %eax           /* CR4: PAE, OSFXSR, OSXMMEXCPT (as UEFI leaves it) */
    movl %eax, %cr4
    movl $0x1000, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx      /* EFER.LME */
    rdmsr
    orw $0x100, %ax
    wrmsr
    movl %cr0, %eax
    andb $0xfb, %al             /* EM off; PG, WP, MP, PE on */
    orl $0x80010003, %eax
    lgdtl gdt_desc
    movl %eax, %cr0
    ljmp $0x08, $long_entry

/* Unreal mode: DS and ES keep a 4 GiB limit back in real mode, so 32-bit addresses
   reach above 1 MiB. Redone after every INT 13h, which may reload the segments. */
unreal:
    cli
    pushw %ds
    pushw %es
    lgdtl gdt_desc
    movl %cr0, %eax
    orb $1, %al
    movl %eax, %cr0
    movw $0x10, %bx
    movw %bx, %ds
    movw %bx, %es
    andb $0xfe, %al
    movl %eax, %cr0
    popw %es
    popw %ds
    sti
    ret

    .code64
long_entry:
    movl $0x10, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movl ${stack_top}, %esp
    call {stage3}
    ud2

msg_too_big: .asciz "zen-boot: zenos.bin does not fit in memory\r\n"

/* (port, value): interrupts off, divisor 1, 8N1, FIFOs on, DTR/RTS/OUT2 */
com1_init: .byte 0xf9, 0x00, 0xfb, 0x80, 0xf8, 0x01, 0xf9, 0x00, 0xfb, 0x03, 0xfa, 0xc7, 0xfc, 0x0b
    .balign 8
gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: flat data, 4 GiB */
gdt_desc:
    .word gdt_desc - gdt - 1
    .long gdt
load_dap:
    .byte 0x10, 0
load_count: .word 0
    .word 0, 0x1000             /* buffer 1000:0000 */
load_lba: .quad 0
load_dest: .long {file_base}
load_left: .long 0
    .global e820_count, vbe_ok
e820_count: .word 0
vbe_ok: .byte 0
    "#,
    e820_buf = const E820_BUF,
    e820_max = const E820_MAX,
    vbe_mode = const VBE_MODE_INFO,
    stack_top = const LONG_STACK_TOP,
    file_base = const zen_boot_bios::FILE_BASE,
    max_len = const zen_boot_bios::MAX_ZENOS_LEN,
    stage3 = sym crate::stage3,
    options(att_syntax),
);
