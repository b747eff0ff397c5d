//
// QC -> NORMALIZE -> SELECT_HVG for each sample: the shared start of both branches.
//
include { QC         } from '../../../modules/local/qc'
include { NORMALIZE  } from '../../../modules/local/normalize'
include { SELECT_HVG } from '../../../modules/local/hvg'

workflow PREPROCESS {
    take:
    ch_samples // channel: [ val(meta), path(sc), path(st), path(genes) or [] ]

    main:
    QC(ch_samples.map { meta, sc, st, _genes -> [meta, sc, st] })
    NORMALIZE(QC.out.h5ad)

    ch_genes = ch_samples.map { meta, _sc, _st, genes -> [meta, genes] }
    SELECT_HVG(NORMALIZE.out.h5ad.join(ch_genes, failOnMismatch: true))

    ch_versions = QC.out.versions.mix(NORMALIZE.out.versions, SELECT_HVG.out.versions)
    ch_mqc = QC.out.mqc.mix(SELECT_HVG.out.mqc)

    emit:
    h5ad     = SELECT_HVG.out.h5ad  // channel: [ val(meta), path(sc_hvg), path(st_hvg) ]
    split    = SELECT_HVG.out.split // channel: [ val(meta), path(split_json) ]
    qc       = QC.out.json          // channel: [ val(meta), path(qc_json) ]
    mqc      = ch_mqc               // channel: path(*_mqc.*)
    versions = ch_versions          // channel: path(versions.yml)
}
