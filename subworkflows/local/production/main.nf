//
// Production branch: CAUSALGED_TRAIN on all shared genes, then CAUSALGED_IMPUTE the target genes (annotated with the
// evaluation branch's expected accuracy per gene when it ran).
//
include { CAUSALGED_TRAIN  } from '../../../modules/local/train'
include { CAUSALGED_IMPUTE } from '../../../modules/local/impute'

workflow PRODUCTION {
    take:
    ch_h5ad  // channel: [ val(meta), path(sc_hvg), path(st_hvg) ]
    ch_split // channel: [ val(meta), path(split_json) ]
    ch_trust // channel: [ val(meta), path(gene_trust_csv) or [] ]

    main:
    CAUSALGED_TRAIN(ch_h5ad.join(ch_split, failOnMismatch: true))
    CAUSALGED_IMPUTE(
        CAUSALGED_TRAIN.out.model
            .join(ch_h5ad, failOnMismatch: true)
            .join(ch_trust, failOnMismatch: true)
    )

    emit:
    model    = CAUSALGED_TRAIN.out.model                                       // channel: [ val(meta), path(model_dir) ]
    imputed  = CAUSALGED_IMPUTE.out.h5ad                                       // channel: [ val(meta), path(imputed_h5ad) ]
    zarr     = CAUSALGED_IMPUTE.out.zarr                                       // channel: [ val(meta), path(imputed_zarr) ]: SpatialData
    mqc      = CAUSALGED_TRAIN.out.mqc.mix(CAUSALGED_IMPUTE.out.mqc, CAUSALGED_IMPUTE.out.figures) // channel: path(*_mqc.*)
    versions = CAUSALGED_TRAIN.out.versions.mix(CAUSALGED_IMPUTE.out.versions) // channel: path(versions.yml)
}
