

xPlaceholder

yMatMul
'
pPrintV2*
output_streamstderr