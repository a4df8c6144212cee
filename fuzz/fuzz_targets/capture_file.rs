//! pcap/pcapng files: any file reads to its end or to a clear error, never a panic.
#![no_main]
use capture::FileSource;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("grpctap-fuzz-{}.pcap", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(mut src) = FileSource::open(&path, 1 << 20) {
        while let Ok(Some(_)) = src.next_packet() {}
    }
});
