//
// CAUSALGED_IMPORT -> CAUSALGED_QC -> CAUSALGED_NORMALIZE -> CAUSALGED_SELECT_HVG for each sample: the
// shared start of both branches. The import reads the inputs as they come (instrument folders too).
//
include { CAUSALGED_IMPORT     } from '../../../modules/local/import'
include { CAUSALGED_QC         } from '../../../modules/local/qc'
include { CAUSALGED_NORMALIZE  } from '../../../modules/local/normalize'
include { CAUSALGED_SELECT_HVG } from '../../../modules/local/hvg'

workflow PREPROCESS {
    take:
    ch_samples // channel: [ val(meta), path(sc), path(st), path(genes) or [] ]

    main:
    CAUSALGED_IMPORT(ch_samples.map { meta, sc, st, _genes -> [meta, sc, st] })
    CAUSALGED_QC(CAUSALGED_IMPORT.out.h5ad)
    CAUSALGED_NORMALIZE(CAUSALGED_QC.out.h5ad)

    ch_genes = ch_samples.map { meta, _sc, _st, genes -> [meta, genes] }
    CAUSALGED_SELECT_HVG(CAUSALGED_NORMALIZE.out.h5ad.join(ch_genes, failOnMismatch: true))

    ch_versions = CAUSALGED_IMPORT.out.versions.mix(CAUSALGED_QC.out.versions, CAUSALGED_NORMALIZE.out.versions, CAUSALGED_SELECT_HVG.out.versions)
    ch_mqc = CAUSALGED_IMPORT.out.mqc.mix(CAUSALGED_QC.out.mqc, CAUSALGED_SELECT_HVG.out.mqc)

    emit:
    h5ad     = CAUSALGED_SELECT_HVG.out.h5ad  // channel: [ val(meta), path(sc_hvg), path(st_hvg) ]
    normalized = CAUSALGED_NORMALIZE.out.h5ad // channel: [ val(meta), path(sc_norm), path(st_norm) ]
    split    = CAUSALGED_SELECT_HVG.out.split // channel: [ val(meta), path(split_json) ]
    imported = CAUSALGED_IMPORT.out.h5ad      // channel: [ val(meta), path(sc), path(st) ]: the inputs as raw-count .h5ad
    qc       = CAUSALGED_QC.out.json          // channel: [ val(meta), path(qc_json) ]
    mqc      = ch_mqc                         // channel: path(*_mqc.*)
    versions = ch_versions                    // channel: path(versions.yml)
}
