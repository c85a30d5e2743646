"""Data: read a source, split it per domain, tokenize and store it.

    corpus = read_source(cfg)                  # data.reading: RawCorpus (cfg: DataConfig)
    splits = make_splits(corpus, cfg)          # data.splits: {domain: {split: [Example]}}
    prepare_dataset(cfg, tok, out_dir, name)   # data.store: both of the above, tokenized, on disk
    data = load_prepared(out_dir)              # data.store: PreparedData

The readers of each source are data.amazon, data.mnli, data.custom and data.synthetic; data.corpus holds
Example and RawCorpus. Import a name from the submodule that defines it.
"""
