//! An image read back by the `object` crate, a third-party ELF reader
//! (issue 11): a 64-bit little-endian core file for this machine whose
//! notes hold one `NT_PRSTATUS` per thread (owner `CORE`) and kckpt's own
//! notes (owner `KCKPT`), and one `PT_LOAD` per memory area `kckpt info`
//! lists, at the same addresses and sizes, whose file ranges lie inside
//! the file.

mod common;

use object::elf::{FileHeader64, ET_CORE, NT_PRSTATUS, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use common::*;

#[test]
fn object_reads_an_image_as_a_core_file() {
    let dir = TestDir::new("object-readback");
    let image = dir.join("threads.kckpt");
    let mut p = Proc::start(prog::THREADS, &["2"]);
    p.line(LINE_TIMEOUT);
    dump_kills(&mut p, &image);
    let info = info_json(&image);
    let data = std::fs::read(&image).unwrap();
    let header = FileHeader64::<Endianness>::parse(&*data).expect("an ELF64 header");
    let endian = header.endian().expect("an endianness");
    assert_eq!(header.e_type(endian), ET_CORE, "a core file");
    let machine = if cfg!(target_arch = "x86_64") {
        object::elf::EM_X86_64
    } else {
        object::elf::EM_AARCH64
    };
    assert_eq!(header.e_machine(endian), machine);
    let segments = header
        .program_headers(endian, &*data)
        .expect("program headers");
    let mut prstatus = 0;
    let mut owners = std::collections::BTreeSet::new();
    let mut loads = Vec::new();
    for seg in segments {
        let (offset, size) = seg.file_range(endian);
        assert!(offset + size <= data.len() as u64, "a segment past the end");
        match seg.p_type(endian) {
            PT_NOTE => {
                let mut notes = seg
                    .notes(endian, &*data)
                    .expect("notes")
                    .expect("a note segment");
                while let Some(note) = notes.next().expect("a well-formed note") {
                    owners.insert(String::from_utf8_lossy(note.name()).into_owned());
                    if note.name() == b"CORE" && note.n_type(endian) == NT_PRSTATUS {
                        prstatus += 1;
                    }
                }
            }
            PT_LOAD => loads.push((seg.p_vaddr(endian), seg.p_memsz(endian))),
            _ => {}
        }
    }
    assert_eq!(
        prstatus, 3,
        "one NT_PRSTATUS per thread (main and 2 workers)"
    );
    assert!(
        owners.contains("CORE") && owners.contains("KCKPT"),
        "{owners:?}"
    );
    let vmas: Vec<(u64, u64)> = info["vmas"]
        .as_array()
        .expect("vmas")
        .iter()
        .map(|v| {
            let (start, end) = (v["start"].as_u64().unwrap(), v["end"].as_u64().unwrap());
            (start, end - start)
        })
        .collect();
    assert_eq!(loads, vmas, "one PT_LOAD per memory area");
}
