//! Opening the files a load reads (zone files, `$INCLUDE`d files, the GeoIP database) so
//! that only regular files are read. A FIFO would block the loader until some writer
//! appeared, a character device could stream forever, and a reload stuck that way would
//! hold the reload lock: such a file is refused by name, and never opened in a way that
//! waits.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Opens `path` for reading when it is a regular file (after following symbolic links);
/// anything else is an error that says what it is.
pub fn open_regular(path: &Path) -> io::Result<File> {
    // stat() first, so that a FIFO is never opened at all.
    regular(&fs::metadata(path)?)?;
    // O_NONBLOCK: should the path have become a FIFO since the stat, the open returns at
    // once instead of waiting for a writer (it has no effect on a regular file's reads).
    // O_NOCTTY: a terminal device never becomes ours.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    // What was opened is what counts.
    regular(&file.metadata()?)?;
    Ok(file)
}

/// The contents of the regular file at `path` (see [`open_regular`]).
pub fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The contents of the regular file at `path` as UTF-8 text.
pub fn read_regular_to_string(path: &Path) -> io::Result<String> {
    String::from_utf8(read_regular(path)?).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

fn regular(meta: &Metadata) -> io::Result<()> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what}, not a regular file: only regular files are read"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.zone");
        fs::write(&file, "text").unwrap();
        assert_eq!(read_regular_to_string(&file).unwrap(), "text");
        let link = dir.path().join("link.zone");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_regular_to_string(&link).unwrap(), "text");

        let fifo = dir.path().join("fifo.zone");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        // Returns at once (a blocking open would wait here for a writer forever).
        let e = read_regular(&fifo).unwrap_err();
        assert!(
            e.to_string()
                .contains("a FIFO (named pipe), not a regular file"),
            "{e}"
        );
        let e = read_regular(dir.path()).unwrap_err();
        assert!(e.to_string().starts_with("a directory"), "{e}");
        let e = read_regular(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().starts_with("a character device"), "{e}");
        let sock = dir.path().join("sock.zone");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = read_regular(&sock).unwrap_err();
        assert!(e.to_string().starts_with("a socket"), "{e}");
    }
}
