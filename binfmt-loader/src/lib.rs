//! binfmt_misc registration of the kckpt stub.
