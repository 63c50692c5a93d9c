//! kckpt library: the dumper and the tools around images.
