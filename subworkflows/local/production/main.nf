//
// Production branch: TRAIN on all shared genes, then IMPUTE the target genes (annotated with the
// evaluation branch's expected accuracy per gene when it ran).
//
include { TRAIN  } from '../../../modules/local/train'
include { IMPUTE } from '../../../modules/local/impute'

workflow PRODUCTION {
    take:
    ch_h5ad  // channel: [ val(meta), path(sc_hvg), path(st_hvg) ]
    ch_split // channel: [ val(meta), path(split_json) ]
    ch_trust // channel: [ val(meta), path(gene_trust_csv) or [] ]

    main:
    TRAIN(ch_h5ad.join(ch_split, failOnMismatch: true))
    IMPUTE(
        TRAIN.out.model
            .join(ch_h5ad, failOnMismatch: true)
            .join(ch_trust, failOnMismatch: true)
    )

    emit:
    model    = TRAIN.out.model                             // channel: [ val(meta), path(model_dir) ]
    imputed  = IMPUTE.out.h5ad                             // channel: [ val(meta), path(imputed_h5ad) ]
    mqc      = TRAIN.out.mqc                               // channel: path(*_mqc.json)
    versions = TRAIN.out.versions.mix(IMPUTE.out.versions) // channel: path(versions.yml)
}
