//! HPACK: any sequence of header blocks decodes or errors; the table stays within its bounds.
#![no_main]
use decoder::hpack::{Decoder, HeaderList, HpackLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = Decoder::new(HpackLimits { max_table_size: 8192, max_string_len: 4096, max_list_size: 16384 });
    let mut out = HeaderList::default();
    // The first byte of each chunk is its length: several blocks share one table.
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let _ = d.decode(&tail[..n], &mut out);
        rest = &tail[n..];
    }
});
