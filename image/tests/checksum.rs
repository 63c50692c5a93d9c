//! The checksum functions against a reference implementation (the
//! `crc32c` crate), on both paths: the one this CPU selects (its CRC
//! instruction when it has one) and the table, which every CPU runs.

use kckpt_image::checksum::{
    chunk_sum, chunk_sum_by, crc32c, engine, ChunkHasher, Engine, BLOCK, LANES,
};

/// Deterministic pseudo-random bytes (xorshift).
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The chunk rule of docs/FORMAT.md written out plainly with the
/// reference CRC.
fn chunk_reference(data: &[u8]) -> u32 {
    let body = data.len() - data.len() % BLOCK;
    let mut lanes = vec![Vec::new(); LANES];
    for (k, word) in data[..body].chunks_exact(8).enumerate() {
        lanes[k % LANES].extend_from_slice(word);
    }
    let mut out = Vec::new();
    for lane in &lanes {
        out.extend_from_slice(&crc32c::crc32c(lane).to_le_bytes());
    }
    out.extend_from_slice(&data[body..]);
    crc32c::crc32c(&out)
}

const LENGTHS: &[usize] = &[
    0, 1, 7, 8, 9, 31, 32, 33, 63, 64, 100, 255, 256, 511, 512, 543, 544, 576, 1023, 1024, 1056,
    1088, 1120, 2047, 2048, 2080, 4095, 4096, 4097, 4128, 65536, 65569, 65600,
];

const ENGINES: [Engine; 3] = [Engine::Table, Engine::Crc, Engine::Clmul];

#[test]
fn crc32c_matches_the_reference() {
    println!("checksum engine of this CPU: {:?}", engine());
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    for (i, &len) in LENGTHS.iter().enumerate() {
        let data = bytes(len + 7, i as u64 + 1);
        // Every alignment of the start.
        for skew in 0..8 {
            let d = &data[skew..skew + len];
            let want = crc32c::crc32c(d);
            assert_eq!(crc32c(d), want, "len {len} skew {skew}");
        }
    }
}

#[test]
fn chunk_sum_matches_the_documented_rule_with_every_engine() {
    let mut tested = Vec::new();
    for (i, &len) in LENGTHS.iter().enumerate() {
        let data = bytes(len + 3, 100 + i as u64);
        for skew in [0, 1, 3] {
            let d = &data[skew..skew + len];
            let want = chunk_reference(d);
            assert_eq!(chunk_sum(d), want, "len {len} skew {skew}");
            for e in ENGINES {
                if let Some(got) = chunk_sum_by(d, e) {
                    assert_eq!(got, want, "{e:?}, len {len} skew {skew}");
                    if !tested.contains(&e) {
                        tested.push(e);
                    }
                }
            }
        }
    }
    // The table always runs; which others did depends on this CPU.
    assert!(tested.contains(&Engine::Table));
    println!("engines compared with the reference on this CPU: {tested:?}");
}

#[test]
fn every_engine_agrees_on_a_whole_chunk() {
    let data = bytes(256 << 10, 11);
    let want = chunk_reference(&data);
    for e in ENGINES {
        if let Some(got) = chunk_sum_by(&data, e) {
            assert_eq!(got, want, "{e:?}");
        }
    }
}

#[test]
fn chunk_hasher_in_pieces_equals_one_pass() {
    let data = bytes(3 * 4096 + 20, 7);
    let whole = chunk_sum(&data);
    let mut h = ChunkHasher::new();
    let body = data.len() - data.len() % BLOCK;
    for piece in data[..body].chunks(4096) {
        h.update(piece);
    }
    assert_eq!(h.finish(&data[body..]), whole);
}

#[test]
fn every_single_bit_flip_changes_the_chunk_sum() {
    let mut data = bytes(4096 + 17, 9);
    let good = chunk_sum(&data);
    for bit in 0..data.len() * 8 {
        data[bit / 8] ^= 1 << (bit % 8);
        assert_ne!(chunk_sum(&data), good, "flip of bit {bit} not detected");
        data[bit / 8] ^= 1 << (bit % 8);
    }
}

#[test]
fn throughput_is_printed() {
    // Not a benchmark with a threshold (this may run on any CPU): the
    // figures (a 256 KiB chunk in cache, as the stub checks it) go to the
    // test output for whoever wants them.
    let data = bytes(256 << 10, 3);
    for e in ENGINES {
        let rounds = if e == Engine::Table { 16 } else { 1024 };
        let mut s = 0;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            match chunk_sum_by(&data, e) {
                Some(v) => s ^= v,
                None => break,
            }
        }
        let secs = t.elapsed().as_secs_f64();
        if chunk_sum_by(&data, e).is_some() {
            let gbs = (data.len() * rounds) as f64 / secs / 1e9;
            println!("{e:?}: {gbs:.1} GB/s ({s:#x})");
        }
    }
}
